/**
 * The recent-logs buffer, in each storage adapter: memory, Redis (the machine's real server) and
 * files in a temporary directory.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { randomBytes } from "node:crypto"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RecentLogs from "../../../src/layers/logtail/RecentLogs.ts"
import * as RedisRecentLogs from "../../../src/layers/logtail/RedisRecentLogs.ts"

const N = 50
const line = (app: string, i: number) => `2026-01-01T00:00:00+00:00 ${app}[web.1]: line ${i}`
const lines = (app: string, from: number, count: number) => Array.from({ length: count }, (_, i) => line(app, from + i))

const adapters: ReadonlyArray<readonly [string, () => { layer: Layer.Layer<RecentLogs.RecentLogs, RecentLogs.StorageError>; cleanup: () => void }]> = [
  ["memory", () => ({ layer: RecentLogs.memory(N), cleanup: () => {} })],
  ["file", () => {
    const dir = mkdtempSync(join(tmpdir(), "logtail-files-"))
    return { layer: RecentLogs.file(join(dir, "logs"), N), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
  }],
  ["redis", () => ({
    // Pipelines of 7 lines or 50 ms: both triggers are crossed below.
    layer: RedisRecentLogs.layer({ host: "127.0.0.1", port: 6379, db: 5, linesPerApp: N, pipelineLength: 7, pipelineTimeout: Duration.millis(50) }),
    cleanup: () => {}
  })]
]

describe("recent-logs buffer", () => {
  for (const [name, make] of adapters) {
    it.live(`${name}: N+k lines in, the last N out, per app, in order; unknown app, fewer lines, delete`, () => {
      const { layer, cleanup } = make()
      const a = `app-${randomBytes(4).toString("hex")}`
      const b = `other.${randomBytes(4).toString("hex")}`
      return Effect.gen(function*() {
        const store = yield* RecentLogs.RecentLogs
        // Interleaved apps, in batches of uneven size, 3N+13 lines for a and N-10 for b.
        let i = 0
        while (i < 3 * N + 13) {
          const size = 1 + (i % 11)
          const batch: Array<readonly [string, string]> = []
          for (let k = 0; k < size && i < 3 * N + 13; k++, i++) {
            batch.push([a, line(a, i)])
            if (i < N - 10) batch.push([b, line(b, i)])
          }
          yield* store.write(batch)
        }
        assert.deepStrictEqual(yield* store.read(a, 1000), lines(a, 2 * N + 13, N))
        assert.deepStrictEqual(yield* store.read(a, 5), lines(a, 3 * N + 8, 5))
        assert.deepStrictEqual(yield* store.read(b, 100), lines(b, 0, N - 10))
        assert.deepStrictEqual(yield* store.read(a, 0), [])
        assert.isUndefined(yield* store.read(`nobody-${randomBytes(4).toString("hex")}`, 10))
        yield* store.destroy(a)
        assert.isUndefined(yield* store.read(a, 10))
        assert.deepStrictEqual(yield* store.read(b, 1), lines(b, N - 11, 1))
        yield* store.destroy(b)
      }).pipe(Effect.provide(layer), Effect.ensuring(Effect.sync(cleanup)))
    })
  }

  it.live("file: an app name cannot leave the directory", () => {
    const dir = mkdtempSync(join(tmpdir(), "logtail-files-"))
    return Effect.gen(function*() {
      const store = yield* RecentLogs.RecentLogs
      yield* store.write([["../../etc/evil", "x"], ["..", "y"]])
      assert.deepStrictEqual(readdirSync(dir), ["logs"])
      assert.deepStrictEqual(yield* store.read("../../etc/evil", 10), ["x"])
      assert.deepStrictEqual(yield* store.read("..", 10), ["y"])
    }).pipe(Effect.provide(RecentLogs.file(join(dir, "logs"), N)), Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })

  it.live("redis: keys are the app names, as deis/logger wrote them (its lists are read as they are)", () =>
    Effect.gen(function*() {
      const app = `deis-${randomBytes(4).toString("hex")}`
      const redis = new Redis({ host: "127.0.0.1", port: 6379, db: 5 })
      yield* Effect.promise(() => redis.rpush(app, "2016-05-31T01:34:43+00:00 foo[web.v2.2ggow]: written by deis/logger"))
      const store = yield* RecentLogs.RecentLogs
      yield* store.write([[app, "2016-05-31T01:34:44+00:00 foo[web.v2.2ggow]: written by logtail"]])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.lrange(app, 0, -1)), [
        "2016-05-31T01:34:43+00:00 foo[web.v2.2ggow]: written by deis/logger",
        "2016-05-31T01:34:44+00:00 foo[web.v2.2ggow]: written by logtail"
      ])
      yield* store.destroy(app)
      assert.strictEqual(yield* Effect.promise(() => redis.exists(app)), 0)
      yield* Effect.promise(() => redis.quit())
    }).pipe(Effect.provide(RedisRecentLogs.layer({
      host: "127.0.0.1", port: 6379, db: 5, linesPerApp: N, pipelineLength: 50, pipelineTimeout: Duration.millis(20)
    }))))

  it.live("redis: an unreachable server is a clear error at start", () =>
    Effect.gen(function*() {
      const result = yield* Effect.flip(Layer.build(RedisRecentLogs.layer({
        host: "127.0.0.1", port: 1, db: 0, linesPerApp: N, pipelineLength: 50, pipelineTimeout: Duration.millis(20)
      })).pipe(Effect.scoped))
      assert.match(result.message, /^redis storage: cannot connect to 127\.0\.0\.1:1\/0: .*ECONNREFUSED/)
    }))
})
