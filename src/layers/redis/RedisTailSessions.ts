/**
 * Tail sessions in Redis: a `POST /tails` on any replica makes a session every replica can open.
 * The expiry rules are those of the memory store (TailSessions.ts), timed by Redis's clock, so
 * replicas whose clocks differ agree: opened at most once, within 5 minutes of its creation;
 * remembered for 35 minutes to say why it cannot be opened.
 */
import { type Cause, Duration, Effect, Layer } from "effect"
import * as Redis from "effect/persistence/Redis"
import { EXPIRE_UNUSED, isId, newId, type Opened, REMEMBER, TailSessionError, TailSessions } from "../tails/TailSessions.ts"
import type { Keys } from "./keys.ts"

const NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)"

/** KEYS: the session. ARGV: hostname, how long it is remembered (ms). */
const create = Redis.script((key: string, hostname: string, rememberMs: number) => [key, hostname, rememberMs], {
  numberOfKeys: 1,
  lua: `${NOW}
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'c', now, 'u', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`
})

/** KEYS: the session. ARGV: how long an unopened one lasts (ms). Returns {reason} or {'ok', hostname}. */
const open = Redis.script((key: string, expireMs: number) => [key, expireMs], {
  numberOfKeys: 1,
  lua: `${NOW}
local s = redis.call('HMGET', KEYS[1], 'h', 'c', 'u')
if not s[1] then return {'unknown'} end
if s[3] == '1' then return {'used'} end
if now - tonumber(s[2]) > tonumber(ARGV[1]) then return {'expired'} end
redis.call('HSET', KEYS[1], 'u', 1)
return {'ok', s[1]}`
}).withReturnType<ReadonlyArray<string>>()

export interface Options {
  readonly keys: Keys
  readonly expireUnused?: Duration.Duration | undefined
}

const failed = (error: Redis.RedisError | Cause.TimeoutError) =>
  new TailSessionError({
    reason: "Unavailable",
    detail: error._tag === "TimeoutError"
      ? "Redis did not answer within 5 s"
      : `Redis: ${error.cause instanceof Error ? error.cause.message : String(error.cause)}`
  })

/** While Redis is away, commands wait for it to come back: a client gets a 503 rather than wait long. */
const ANSWER_WITHIN = Duration.seconds(5)

export const layer = (options: Options) =>
  Layer.effect(
    TailSessions,
    Effect.gen(function*() {
      const redis = yield* Redis.Redis
      const expireUnused = Duration.toMillis(options.expireUnused ?? EXPIRE_UNUSED)
      // Long enough to tell an expired session from an unknown one for as long as a tail may last.
      const remember = Math.max(Duration.toMillis(REMEMBER), 2 * expireUnused)
      const runCreate = redis.eval(create)
      const runOpen = redis.eval(open)
      return TailSessions.of({
        create: (hostname) =>
          Effect.suspend(() => {
            const id = newId()
            return runCreate(options.keys.session(id), hostname, remember).pipe(Effect.timeout(ANSWER_WITHIN), Effect.as(id), Effect.mapError(failed))
          }),
        open: (id) =>
          isId(id)
            ? runOpen(options.keys.session(id), expireUnused).pipe(
              Effect.timeout(ANSWER_WITHIN),
              Effect.map((answer): Opened =>
                answer[0] === "ok"
                  ? { hostname: answer[1]! }
                  : { refused: answer[0] === "used" ? "used" : answer[0] === "expired" ? "expired" : "unknown" }
              ),
              Effect.mapError(failed)
            )
            : Effect.succeed({ refused: "malformed" })
      })
    })
  )
