/**
 * logtail's one Redis client: node-redis through Effect's `NodeRedis` layer, which provides the
 * `Redis` service (commands, Lua scripts, pub/sub) and reconnects — with backoff, up to 2 s apart —
 * after Redis drops the connection. The recent-logs lists, tail sessions, tail leases and the tail
 * fan-out all go through it; a pub/sub subscription needs a connection of its own (Redis allows
 * nothing else on one), which the layer opens from the same client. Loaded only when
 * `STORAGE_ADAPTER=redis`.
 *
 * Commands sent while it reconnects wait (at most 10,000 of them, then they fail) and go out once
 * it is back.
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { Effect, Layer, References } from "effect"
import type { Redis } from "effect/persistence/Redis"
import * as Log from "../Log.ts"
import { StorageError } from "../storage/RecentLogs.ts"

export interface Options {
  /** `redis://[:password@]host:port/db`; else the host/port/password/db below. */
  readonly url?: string | undefined
  readonly host: string
  readonly port: number
  readonly password?: string | undefined
  readonly db: number
  /** Shown by `CLIENT LIST` (`CLIENT SETNAME`), so an operator can tell logtail's connections. */
  readonly clientName?: string | undefined
}

/** Where the client connects, for messages: a URL's credentials never appear. */
export const describe = (options: Options): string =>
  options.url === undefined ? `${options.host}:${options.port}/${options.db}` : redact(options.url)

/**
 * Everything between `://` and the last `@` is user info, masked whatever it holds (a Redis URL's
 * path is a database number: an `@` after the host is part of a password with an unencoded `/`).
 */
const redact = (url: string): string => {
  const scheme = url.indexOf("://")
  if (scheme === -1) return "***"
  const at = url.lastIndexOf("@")
  return at < scheme ? url : `${url.slice(0, scheme + 3)}***@${url.slice(at + 1)}`
}

const causeMessage = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : String(cause)
  // node-redis names the URL in some errors: never show its credentials.
  return message.replace(/\/\/\S*@/g, "//***@")
}

/**
 * One warning when the connection drops (then at most one every 30 s while it stays down) and a
 * line when it is back — instead of NodeRedis's own warning at every reconnection attempt, which
 * is silenced (a Redis outage would otherwise log one every few hundred milliseconds, twice).
 */
const watch = (where: string) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const { client } = yield* NodeRedis.NodeRedis
    const run = Effect.runForkWith(yield* Effect.context<never>())
    let down = false
    let warned = 0
    client.on("error", (error: unknown) => {
      const now = Date.now()
      if (!down || now - warned > 30_000) {
        warned = now
        run(Log.warn("Redis connection lost; reconnecting", { redis: where, error: causeMessage(error) }))
      }
      down = true
    })
    client.on("ready", () => {
      if (!down) return
      down = false
      run(Log.info("Redis connection back", { redis: where }))
    })
  }))

export const layer = (options: Options): Layer.Layer<Redis | NodeRedis.NodeRedis, StorageError> =>
  NodeRedis.layer({
    ...(options.url === undefined
      ? { socket: { host: options.host, port: options.port }, database: options.db, ...(options.password === undefined ? {} : { password: options.password }) }
      : { url: options.url }),
    ...(options.clientName === undefined ? {} : { name: options.clientName }),
    commandsQueueMaxLength: 10_000
  }).pipe(
    Layer.provide(Layer.succeed(References.MinimumLogLevel, "Error")),
    Layer.catch((error): Layer.Layer<Redis | NodeRedis.NodeRedis, StorageError> =>
      Layer.effectContext(
        Effect.fail(new StorageError({ adapter: "redis", detail: `cannot connect to ${describe(options)}: ${causeMessage(error.cause)}` }))
      )
    ),
    (connection) => Layer.provideMerge(watch(describe(options)), connection)
  )
