/**
 * The recent-logs buffer, in each storage adapter: memory, Redis (the machine's real server) and
 * files in a temporary directory.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Redis from "effect/persistence/Redis"
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { randomBytes } from "node:crypto"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RecentLogs from "../../../src/layers/storage/RecentLogs.ts"
import * as FileRecentLogs from "../../../src/layers/storage/FileRecentLogs.ts"
import * as RedisConnection from "../../../src/layers/redis/RedisConnection.ts"
import * as RedisRecentLogs from "../../../src/layers/redis/RedisRecentLogs.ts"

const N = 50
// The machine's Redis, database 5 (recent-logs keys are random app names).
const redis = RedisConnection.layer({ host: "127.0.0.1", port: 6379, db: 5 })
const line = (app: string, i: number) => `2026-01-01T00:00:00+00:00 ${app}[web.1]: line ${i}`
const lines = (app: string, from: number, count: number) => Array.from({ length: count }, (_, i) => line(app, from + i))

const adapters: ReadonlyArray<readonly [string, () => { layer: Layer.Layer<RecentLogs.RecentLogs, RecentLogs.StorageError>; cleanup: () => void }]> = [
  ["memory", () => ({ layer: RecentLogs.memory(N), cleanup: () => {} })],
  ["file", () => {
    const dir = mkdtempSync(join(tmpdir(), "logtail-files-"))
    return { layer: FileRecentLogs.file(join(dir, "logs"), N), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
  }],
  ["redis", () => ({
    // Pipelines of 7 lines or 50 ms: both triggers are crossed below.
    layer: RedisRecentLogs.layer({ linesPerApp: N, pipelineLength: 7, pipelineTimeout: Duration.millis(50) }).pipe(Layer.provide(redis)),
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
    }).pipe(Effect.provide(FileRecentLogs.file(join(dir, "logs"), N)), Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })

  it.live("redis: keys are the app names, as deis/logger wrote them (its lists are read as they are)", () =>
    Effect.gen(function*() {
      const app = `deis-${randomBytes(4).toString("hex")}`
      const client = yield* Redis.Redis
      yield* client.send("RPUSH", app, "2016-05-31T01:34:43+00:00 foo[web.v2.2ggow]: written by deis/logger")
      const store = yield* RecentLogs.RecentLogs
      yield* store.write([[app, "2016-05-31T01:34:44+00:00 foo[web.v2.2ggow]: written by logtail"]])
      assert.deepStrictEqual(yield* client.send("LRANGE", app, "0", "-1"), [
        "2016-05-31T01:34:43+00:00 foo[web.v2.2ggow]: written by deis/logger",
        "2016-05-31T01:34:44+00:00 foo[web.v2.2ggow]: written by logtail"
      ])
      yield* store.destroy(app)
      assert.strictEqual(yield* client.send("EXISTS", app), 0)
    }).pipe(Effect.provide(RedisRecentLogs.layer({ linesPerApp: N, pipelineLength: 50, pipelineTimeout: Duration.millis(20) }).pipe(Layer.provideMerge(redis)))))

  it.live("redis: an app whose key holds another type is refused for good (WRONGTYPE), and the batch's other apps are stored", () =>
    Effect.gen(function*() {
      const taken = `taken-${randomBytes(4).toString("hex")}`
      const app = `app-${randomBytes(4).toString("hex")}`
      const client = yield* Redis.Redis
      yield* client.send("SET", taken, "not a list")
      const store = yield* RecentLogs.RecentLogs
      const outcome = yield* store.write([[app, line(app, 0)], [taken, line(taken, 1)], [app, line(app, 2)]])
      assert.deepStrictEqual(outcome.refused, [{ app: taken, lines: 1, reason: "WRONGTYPE" }])
      assert.deepStrictEqual(yield* store.read(app, 10), [line(app, 0), line(app, 2)])
      yield* client.send("DEL", taken, app)
    }).pipe(Effect.provide(RedisRecentLogs.layer({ linesPerApp: N, pipelineLength: 50, pipelineTimeout: Duration.millis(20) }).pipe(Layer.provideMerge(redis)))))

  it.live("redis: an unreachable server is a clear error at start", () =>
    Effect.gen(function*() {
      const result = yield* Effect.flip(Layer.build(RedisConnection.layer({ host: "127.0.0.1", port: 1, db: 0 })).pipe(Effect.scoped))
      assert.match(result.message, /^redis storage: cannot connect to 127\.0\.0\.1:1\/0: .*ECONNREFUSED/)
    }))

  it("redis: a URL's password never appears in what is said about the connection", () => {
    for (const secret of ["S3cret", "p@ss/w#rd?x", "a:b@c"]) {
      const shown = RedisConnection.describe({ url: `redis://user:${secret}@redis.example:6379/2`, host: "", port: 0, db: 0 })
      assert.notInclude(shown, secret)
      assert.strictEqual(shown, "redis://***@redis.example:6379/2")
    }
  })
})

const evicted = () =>
  Effect.map(PrometheusMetrics.format(), (text) => Number(/^logtail_storage_apps_evicted_total\{[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0))

describe("recent-logs buffer under hostile input", () => {
  it.live("file: a 255-character hostname is stored under a name the file system takes, and other apps' lines are stored once", () => {
    const dir = mkdtempSync(join(tmpdir(), "logtail-files-"))
    // RFC 5424 allows 255 characters; a long UTF-8 name (an NSQ app label) grows 6-fold when percent-encoded.
    const long = `${"h".repeat(250)}.shop`
    const longer = `${"h".repeat(250)}.shoq`
    const unicode = "é".repeat(200)
    return Effect.gen(function*() {
      const store = yield* RecentLogs.RecentLogs
      yield* store.write([[long, line(long, 0)], ["a.shop", line("a.shop", 1)], [unicode, line(unicode, 2)]])
      yield* store.write([["a.shop", line("a.shop", 3)], [longer, line(longer, 4)], [long, line(long, 5)]])
      assert.deepStrictEqual(yield* store.read("a.shop", 10), [line("a.shop", 1), line("a.shop", 3)])
      assert.deepStrictEqual(yield* store.read(long, 10), [line(long, 0), line(long, 5)])
      // Names equal but for their last character are different apps.
      assert.deepStrictEqual(yield* store.read(longer, 10), [line(longer, 4)])
      assert.deepStrictEqual(yield* store.read(unicode, 10), [line(unicode, 2)])
      for (const name of readdirSync(join(dir, "logs"))) assert.isAtMost(Buffer.byteLength(name), 255, name)
      yield* store.destroy(long)
      assert.isUndefined(yield* store.read(long, 10))
      assert.deepStrictEqual(yield* store.read(longer, 10), [line(longer, 4)])
    }).pipe(Effect.provide(FileRecentLogs.file(join(dir, "logs"), N)), Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })

  it.live("file: an app whose file can never be written is refused (counted by reason) and the batch's other apps are stored once", () => {
    const dir = mkdtempSync(join(tmpdir(), "logtail-files-"))
    return Effect.gen(function*() {
      // A directory where the app's file would be: every append fails with EISDIR.
      mkdirSync(join(dir, "logs", FileRecentLogs.fileNameOf("blocked.shop")), { recursive: true })
      const store = yield* RecentLogs.RecentLogs
      const first = yield* store.write([["blocked.shop", line("blocked.shop", 0)], ["a.shop", line("a.shop", 1)], ["blocked.shop", line("blocked.shop", 2)]])
      assert.deepStrictEqual(first.refused, [{ app: "blocked.shop", lines: 2, reason: "EISDIR" }])
      const second = yield* store.write([["a.shop", line("a.shop", 3)]])
      assert.deepStrictEqual(second.refused, [])
      assert.deepStrictEqual(yield* store.read("a.shop", 10), [line("a.shop", 1), line("a.shop", 3)])
    }).pipe(Effect.provide(FileRecentLogs.file(join(dir, "logs"), N)), Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })

  it.live("memory: at most maxApps apps are kept; the least recently written is forgotten first, and counted", () =>
    Effect.gen(function*() {
      const store = yield* RecentLogs.RecentLogs
      const before = yield* evicted()
      yield* store.write([["a", line("a", 0)], ["b", line("b", 0)], ["c", line("c", 0)]])
      // a is written again: b is now the least recently written.
      yield* store.write([["a", line("a", 1)]])
      yield* store.write([["d", line("d", 0)]])
      assert.isUndefined(yield* store.read("b", 10))
      assert.deepStrictEqual(yield* store.read("a", 10), [line("a", 0), line("a", 1)])
      assert.deepStrictEqual(yield* store.read("c", 10), [line("c", 0)])
      assert.deepStrictEqual(yield* store.read("d", 10), [line("d", 0)])
      // 10,000 more distinct apps: still 3 kept.
      for (let i = 0; i < 100; i++) yield* store.write(Array.from({ length: 100 }, (_, k) => [`app-${i}-${k}`, line("x", k)] as const))
      assert.isUndefined(yield* store.read("a", 10))
      assert.deepStrictEqual(yield* store.read("app-99-99", 10), [line("x", 99)])
      assert.isUndefined(yield* store.read("app-99-96", 10))
      assert.strictEqual((yield* evicted()) - before, 1 + 10_000)
    }).pipe(Effect.provide(RecentLogs.memory(N, { maxApps: 3 }))))
})
