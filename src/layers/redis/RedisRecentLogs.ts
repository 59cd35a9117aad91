/**
 * The recent-logs buffer in Redis, as deis/logger kept it: a list per app, the key being the app's
 * name, lines `RPUSH`ed and the list `LTRIM`med to the last N; reads are `LRANGE`. So deis clients,
 * and every logtail replica, read the same lines.
 *
 * A write is one Lua script for the whole batch (one round trip, and atomic: a batch is stored
 * whole or not at all, so trying a failed one again stores nothing twice — unless Redis ran it and
 * the answer was lost with the connection). An app whose key holds something else than a list
 * (`WRONGTYPE`) is refused for good, and the other apps' lines stored. Lines are gathered for a
 * write as deis/logger did: up to `DEIS_LOGGER_REDIS_PIPELINE_LENGTH` lines, or
 * `DEIS_LOGGER_REDIS_PIPELINE_TIMEOUT_SECONDS` after the first (the collector does the gathering).
 */
import { Duration, Effect, Layer } from "effect"
import * as Redis from "effect/persistence/Redis"
import * as Log from "../Log.ts"
import { type AppLine, RecentLogs, type Refusal, StorageError } from "../storage/RecentLogs.ts"

export interface Options {
  readonly linesPerApp: number
  readonly pipelineLength: number
  readonly pipelineTimeout: Duration.Duration
}

/**
 * KEYS: the apps. ARGV: the lines to keep per app, then each app's line count, then the lines.
 * Returns, for each app Redis refused, its index (1-based) and the error.
 */
const write = Redis.script(
  (apps: ReadonlyArray<string>, linesPerApp: number, counts: ReadonlyArray<number>, lines: ReadonlyArray<string>) => [
    ...apps,
    linesPerApp,
    ...counts,
    ...lines
  ],
  {
    numberOfKeys: (apps) => apps.length,
    lua: `
local n = #KEYS
local at = n + 2
local failed = {}
for i = 1, n do
  local count = tonumber(ARGV[i + 1])
  local j = 0
  local ok = true
  while j < count do
    local upto = math.min(j + 1000, count)
    local result = redis.pcall('RPUSH', KEYS[i], unpack(ARGV, at + j, at + upto - 1))
    if type(result) == 'table' and result.err then
      failed[#failed + 1] = i
      failed[#failed + 1] = result.err
      ok = false
      break
    end
    j = upto
  end
  if ok then redis.call('LTRIM', KEYS[i], -tonumber(ARGV[1]), -1) end
  at = at + count
end
return failed`
  }
).withReturnType<ReadonlyArray<string | number>>()

/** The first word of a Redis error (`WRONGTYPE Operation against a key…` → `WRONGTYPE`). */
const reasonOf = (error: string): string => /^[A-Z]{1,24}\b/.exec(error)?.[0] ?? "error"

const fail = (detail: string, unwritten?: ReadonlyArray<AppLine>) => (error: Redis.RedisError) =>
  new StorageError({
    adapter: "redis",
    detail: `${detail}: ${error.cause instanceof Error ? error.cause.message : String(error.cause)}`,
    unwritten
  })

export const layer = (options: Options) =>
  Layer.effect(
    RecentLogs,
    Effect.gen(function*() {
      const redis = yield* Redis.Redis
      const run = redis.eval(write)
      yield* Log.info("recent logs in Redis", { linesPerApp: options.linesPerApp })
      return RecentLogs.of({
        adapter: "redis",
        batching: { lines: options.pipelineLength, timeoutMillis: Duration.toMillis(options.pipelineTimeout) },
        write: (lines) =>
          Effect.suspend(() => {
            if (lines.length === 0) return Effect.succeed({ refused: [] })
            const byApp = new Map<string, Array<string>>()
            for (const [app, line] of lines) {
              const list = byApp.get(app)
              if (list === undefined) byApp.set(app, [line])
              else list.push(line)
            }
            const apps = [...byApp.keys()]
            const lists = [...byApp.values()]
            return run(apps, options.linesPerApp, lists.map((l) => l.length), lists.flat()).pipe(
              Effect.mapError(fail("write")),
              Effect.flatMap((failed) => {
                const refused: Array<Refusal> = []
                const unavailable: Array<AppLine> = []
                let detail = ""
                for (let k = 0; k + 1 < failed.length; k += 2) {
                  const i = Number(failed[k]) - 1
                  const app = apps[i]!
                  const error = String(failed[k + 1])
                  const reason = reasonOf(error)
                  // A key holding another type can never take a line; anything else is Redis's state.
                  if (reason === "WRONGTYPE") refused.push({ app, lines: lists[i]!.length, reason })
                  else {
                    for (const line of lists[i]!) unavailable.push([app, line])
                    detail = error
                  }
                }
                return unavailable.length === 0
                  ? Effect.succeed({ refused })
                  : Effect.fail(new StorageError({ adapter: "redis", detail: `write: ${detail}`, unwritten: unavailable }))
              })
            )
          }),
        read: (app, n) =>
          n <= 0
            ? redis.send<number>("EXISTS", app).pipe(
              Effect.map((exists) => (exists === 0 ? undefined : [])),
              Effect.mapError(fail("cannot read"))
            )
            : redis.send<Array<string>>("LRANGE", app, String(-n), "-1").pipe(
              Effect.map((lines) => (lines.length === 0 ? undefined : lines)),
              Effect.mapError(fail("cannot read"))
            ),
        destroy: (app) => Effect.asVoid(redis.send("DEL", app)).pipe(Effect.mapError(fail("cannot delete")))
      })
    })
  )
