/**
 * Tail sessions, in memory and in Redis (the machine's, a key prefix of this run's own): opened
 * once, within the time allowed, and a refusal that says why.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { keysOf } from "../../../src/layers/redis/keys.ts"
import * as RedisConnection from "../../../src/layers/redis/RedisConnection.ts"
import * as RedisTailSessions from "../../../src/layers/redis/RedisTailSessions.ts"
import * as TailSessions from "../../../src/layers/tails/TailSessions.ts"

const expireUnused = Duration.millis(300)
const stores: ReadonlyArray<readonly [string, Layer.Layer<TailSessions.TailSessions, unknown>]> = [
  ["memory", TailSessions.memory({ expireUnused })],
  ["redis", RedisTailSessions.layer({ keys: keysOf(`logtail-test-${randomBytes(4).toString("hex")} `), expireUnused }).pipe(
    Layer.provide(RedisConnection.layer({ host: "127.0.0.1", port: 6379, db: 6 }))
  )]
]

describe("tail sessions", () => {
  for (const [name, layer] of stores) {
    it.live(`${name}: a session opens once, within its time, for its hostname; otherwise the refusal says why`, () =>
      Effect.gen(function*() {
        const sessions = yield* TailSessions.TailSessions
        const id = yield* sessions.create("web.shop")
        assert.isTrue(TailSessions.isId(id))
        assert.deepStrictEqual(yield* sessions.open(id), { hostname: "web.shop" })
        assert.deepStrictEqual(yield* sessions.open(id), { refused: "used" })
        assert.deepStrictEqual(yield* sessions.open(TailSessions.newId()), { refused: "unknown" })
        assert.deepStrictEqual(yield* sessions.open("../../etc/passwd"), { refused: "malformed" })
        assert.deepStrictEqual(yield* sessions.open(""), { refused: "malformed" })
        const late = yield* sessions.create("api.shop")
        yield* Effect.sleep("500 millis")
        assert.deepStrictEqual(yield* sessions.open(late), { refused: "expired" })
        // A long hostname is a hostname like another.
        const long = "h".repeat(255)
        assert.deepStrictEqual(yield* sessions.open(yield* sessions.create(long)), { hostname: long })
      }).pipe(Effect.provide(layer)))
  }

  it.live("memory: at most maxSessions wait to be opened; more are refused until room is made", () =>
    Effect.gen(function*() {
      const sessions = yield* TailSessions.TailSessions
      const first = yield* sessions.create("a")
      yield* sessions.create("b")
      const refused = yield* Effect.flip(sessions.create("c"))
      assert.strictEqual(refused.reason, "Full")
      // Opening one leaves it kept only to say "used": it gives way to a new session.
      yield* sessions.open(first)
      yield* sessions.create("c")
    }).pipe(Effect.provide(TailSessions.memory({ maxSessions: 2 }))))
})
