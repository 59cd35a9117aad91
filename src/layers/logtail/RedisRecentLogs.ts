/**
 * The recent-logs buffer in Redis, as deis/logger kept it: a list per app, the key being the app's
 * name; each line `RPUSH`ed and the list `LTRIM`med to the last N, pipelined — a pipeline is sent
 * once it holds `pipelineLength` lines or `pipelineTimeout` after its first. Reads are `LRANGE`.
 *
 * Lines are acknowledged (the write returns) when their pipeline has been executed, so what the
 * collector takes from the queue is in Redis, or reported as an error and retried by the caller.
 * Loaded only when `STORAGE_ADAPTER=redis`.
 */
import { Deferred, Duration, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { RecentLogs, StorageError } from "./RecentLogs.ts"
import * as Log from "../Log.ts"

export interface Options {
  /** `redis://[:password@]host:port/db`; else the host/port/password/db below. */
  readonly url?: string | undefined
  readonly host: string
  readonly port: number
  readonly password?: string | undefined
  readonly db: number
  readonly linesPerApp: number
  readonly pipelineLength: number
  readonly pipelineTimeout: Duration.Duration
}

const fail = (detail: string) => (error: unknown) =>
  new StorageError({ adapter: "redis", detail: `${detail}: ${error instanceof Error ? error.message : String(error)}` })

export const layer = (options: Options) =>
  Layer.effect(
    RecentLogs,
    Effect.gen(function*() {
      const settings = { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true }
      const client = options.url === undefined
        ? new Redis({ host: options.host, port: options.port, password: options.password, db: options.db, ...settings })
        : new Redis(options.url, settings)
      // Errors are reported through the commands that fail; the latest says why a connect failed.
      let lastError: Error | undefined
      client.on("error", (error: Error) => (lastError = error))
      const where = options.url === undefined ? `${options.host}:${options.port}/${options.db}` : redact(options.url)
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => client.connect(),
          catch: (error) => {
            client.disconnect()
            return fail(`cannot connect to ${where}`)(lastError ?? error)
          }
        }),
        () => Effect.promise(() => client.quit().catch(() => client.disconnect()))
      )
      yield* Log.info("recent logs in Redis", { redis: where, linesPerApp: options.linesPerApp })

      // The pipeline being filled, and who waits for it.
      let pending: Array<readonly [string, string]> = []
      let waiting: Deferred.Deferred<void, StorageError> | undefined
      let timer: ReturnType<typeof setTimeout> | undefined

      const flush = () => {
        if (timer !== undefined) clearTimeout(timer)
        timer = undefined
        const lines = pending
        const done = waiting
        pending = []
        waiting = undefined
        if (lines.length === 0 || done === undefined) return
        const pipeline = client.pipeline()
        const apps = new Set<string>()
        for (const [app, line] of lines) {
          pipeline.rpush(app, line)
          apps.add(app)
        }
        for (const app of apps) pipeline.ltrim(app, -options.linesPerApp, -1)
        pipeline.exec().then(
          (results) => {
            const failed = results?.find(([error]) => error !== null)
            Deferred.doneUnsafe(done, failed === undefined ? Effect.void : Effect.fail(fail("write")(failed[0])))
          },
          (error) => Deferred.doneUnsafe(done, Effect.fail(fail("write")(error)))
        )
      }
      yield* Effect.addFinalizer(() => Effect.sync(flush))

      return RecentLogs.of({
        adapter: "redis",
        write: (lines) =>
          Effect.suspend(() => {
            if (lines.length === 0) return Effect.void
            const done = waiting ?? (waiting = Deferred.makeUnsafe<void, StorageError>())
            for (const line of lines) pending.push(line)
            if (pending.length >= options.pipelineLength) flush()
            else if (timer === undefined) timer = setTimeout(flush, Duration.toMillis(options.pipelineTimeout))
            return Deferred.await(done)
          }),
        read: (app, n) =>
          n <= 0
            ? Effect.tryPromise({ try: () => client.exists(app), catch: fail(`cannot read ${app}`) }).pipe(
              Effect.map((exists) => (exists === 0 ? undefined : []))
            )
            : Effect.tryPromise({ try: () => client.lrange(app, -n, -1), catch: fail(`cannot read ${app}`) }).pipe(
              Effect.map((lines) => (lines.length === 0 ? undefined : lines))
            ),
        destroy: (app) => Effect.asVoid(Effect.tryPromise({ try: () => client.del(app), catch: fail(`cannot delete ${app}`) }))
      })
    })
  )

const redact = (url: string): string => url.replace(/\/\/[^@/]*@/, "//***@")
