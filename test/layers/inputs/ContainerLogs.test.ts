import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { appendFileSync, existsSync, readFileSync, readlinkSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { waitUntil } from "../../helpers/DrainsHarness.ts"
import * as NodeLayout from "../../helpers/NodeLayout.ts"
import { harness, options } from "../../helpers/ContainerHarness.ts"

const layout = NodeLayout.make
const criLine = NodeLayout.criLine
const expected = NodeLayout.lines
const write = (...args: Parameters<typeof NodeLayout.write>) => Effect.promise(() => NodeLayout.write(...args))

/** The files this process has open. */
const openFiles = () =>
  readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)]
    } catch {
      return []
    }
  })

const metric = (text: string, name: string) =>
  Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m").exec(text)?.[1] ?? Number.NaN)

describe("container log input", () => {
  it.live("reads Docker json-file and CRI files: pieces joined, stderr as errors, names from the file name", () =>
    Effect.gen(function*() {
      const dirs = layout()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const docker = dirs.container("web-5d8f7c-x2x9q", "shop")
      const cri = dirs.container("db-0", "shop", "postgres")
      const { messages, received, start } = yield* harness()
      yield* start(options(dirs))
      yield* Effect.all([write(docker.file, "docker", 0, 300, 5000), write(cri.file, "cri", 0, 300, 5000)], { concurrency: 2 })
      yield* waitUntil(() => received.length >= 600, Duration.seconds(10), () => `${received.length} of 600`)
      assert.deepStrictEqual(messages("web.shop"), expected(0, 300))
      assert.deepStrictEqual(messages("db-0.shop"), expected(0, 300))
      const line5 = received.find((p) => p.hostname === "web.shop" && p.message === "line 5")!
      assert.deepStrictEqual([line5.tag, line5.severity, line5.facility], ["web-5d8f7c-x2x9q", 3, 1])
      const line6 = received.find((p) => p.hostname === "db-0.shop" && p.message === "line 6")!
      assert.deepStrictEqual([line6.tag, line6.severity], ["db-0", 6])
      assert.isBelow(Math.abs(line6.time.getTime() - Date.now()), 60_000)
    }))

  it.live("first run starts existing files at their end; files that appear later are read from their start", () =>
    Effect.gen(function*() {
      const dirs = layout()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const old = dirs.container("old-5d8f7c-aaaaa", "shop")
      yield* write(old.file, "docker", 0, 50, 100_000)
      appendFileSync(old.file, '{"log":"half a line') // mid-write when logtrain starts
      const { messages, start } = yield* harness()
      yield* start(options(dirs))
      appendFileSync(old.file, ' finished\\n","stream":"stdout"}\n')
      yield* write(old.file, "docker", 50, 10, 100_000)
      const fresh = dirs.container("new-5d8f7c-bbbbb", "shop")
      yield* write(fresh.file, "cri", 0, 20, 100_000)
      yield* waitUntil(() => messages("new.shop").length >= 20 && messages("old.shop").length >= 11, Duration.seconds(10), () =>
        `${messages("new.shop").length} ${messages("old.shop").length}`)
      // Joining at the end means after the last whole line: the line being written is read whole.
      assert.deepStrictEqual(messages("old.shop"), ["half a line finished", ...expected(50, 10)])
      assert.deepStrictEqual(messages("new.shop"), expected(0, 20))
    }))

  it.live("a write to a quiet file is read at once (inotify), not at the next poll; also after a rotation", () =>
    Effect.gen(function*() {
      const dirs = layout()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const quiet = dirs.container("quiet-5d8f7c-x2x9q", "shop")
      const { messages, start } = yield* harness()
      // Looks every 30 s: only the watch can bring these lines within the waits below.
      yield* start(options(dirs, { pollInterval: Duration.seconds(30) }))
      yield* Effect.sleep("300 millis") // read to the end, now waiting
      appendFileSync(quiet.file, criLine(0))
      yield* waitUntil(() => messages("quiet.shop").length >= 1, Duration.seconds(3), () => `${messages("quiet.shop").length} of 1`)
      // Rotated by rename: the new file is watched in turn.
      renameSync(quiet.file, `${quiet.file}.20260101-000000`)
      writeFileSync(quiet.file, criLine(1))
      yield* waitUntil(() => messages("quiet.shop").length >= 2, Duration.seconds(3), () => `${messages("quiet.shop").length} of 2`)
      yield* Effect.sleep("300 millis")
      appendFileSync(quiet.file, criLine(2))
      yield* waitUntil(() => messages("quiet.shop").length >= 3, Duration.seconds(3), () => `${messages("quiet.shop").length} of 3`)
      assert.deepStrictEqual(messages("quiet.shop"), expected(0, 3))
      const text = yield* PrometheusMetrics.format()
      assert.strictEqual(metric(text, "logtrain_input_file_watch_failures_total"), 0)
    }), 30_000)

  for (const rotate of ["rename", "copytruncate"] as const) {
    it.live(`rotation by ${rotate} at a high write rate: every line delivered exactly once, in order`, () =>
      Effect.gen(function*() {
        const dirs = layout()
        yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
        const a = dirs.container("api-5d8f7c-x2x9q", "shop")
        const b = dirs.container("worker-5d8f7c-x2x9q", "shop")
        const { messages, received, start } = yield* harness()
        const text = yield* PrometheusMetrics.format()
        const before = metric(text, `logtrain_input_file_rotations_total\\{input="kubernetes",kind="${rotate === "rename" ? "rename" : "copytruncate"}"\\}`)
        yield* start(options(dirs))
        const count = 20_000
        yield* Effect.all([
          // A rotation every 4000-5000 lines: 4-5 a second at this rate, more often than any logrotate
          // setting (at every 75 ms under heavy CPU starvation, copytruncate has been seen to lose
          // a generation now and then: see the README's container log section).
          write(a.file, "docker", 0, count, 20_000, rotate, 5000),
          write(b.file, "cri", 0, count, 20_000, rotate, 4000)
        ], { concurrency: 2 })
        yield* waitUntil(() => received.length >= 2 * count, Duration.seconds(20), () => `${received.length} of ${2 * count}`)
        yield* Effect.sleep("300 millis")
        assert.deepStrictEqual(messages("api.shop"), expected(0, count))
        assert.deepStrictEqual(messages("worker.shop"), expected(0, count))
        const after = yield* PrometheusMetrics.format()
        const rotations = metric(after, `logtrain_input_file_rotations_total\\{input="kubernetes",kind="${rotate}"\\}`) - (Number.isNaN(before) ? 0 : before)
        // 3 + 4 rotations were made; every one seen (several may fall between two looks).
        assert.isAtLeast(rotations, 1)
        if (rotate === "copytruncate") {
          assert.strictEqual(metric(after, "logtrain_input_file_truncations_unrecovered_total"), 0)
        }
      }), 60_000)
  }

  for (const rotate of ["rename", "copytruncate"] as const) {
    it.live(`${rotate}: several rotations while reading is held back (router full) lose nothing`, () =>
      Effect.gen(function*() {
        const dirs = layout()
        yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
        const a = dirs.container("api-5d8f7c-x2x9q", "shop")
        const { consume, messages, received, start } = yield* harness({ capacity: 100, consume: false })
        // The default poll interval: rotations come faster than it looks.
        yield* start(options(dirs, { pollInterval: undefined }))
        yield* write(a.file, "cri", 0, 10_000, 50_000, rotate, 1000)
        yield* consume
        yield* waitUntil(() => received.length >= 10_000, Duration.seconds(20), () => `${received.length} of 10000`)
        yield* Effect.sleep("500 millis")
        assert.deepStrictEqual(messages("api.shop"), expected(0, 10_000))
      }), 30_000)
  }

  it.live("a restart mid-stream (stopped while the writer goes on) delivers every line once, resuming from the checkpoint", () =>
    Effect.gen(function*() {
      const dirs = layout()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const a = dirs.container("api-5d8f7c-x2x9q", "shop")
      yield* write(a.file, "docker", 0, 1000, 100_000) // before the first run: skipped (first run starts at the end)
      const { messages, received, start } = yield* harness()
      const stop = yield* start(options(dirs))
      const writing = yield* Effect.forkChild(write(a.file, "docker", 1000, 6000, 10_000))
      yield* waitUntil(() => received.length >= 1000, Duration.seconds(10), () => `${received.length}`)
      yield* stop
      const atStop = received.length
      const checkpoint = JSON.parse(readFileSync(join(dirs.state, "container-logs.json"), "utf8")) as { files: Array<{ head: { offset: number } }> }
      yield* Effect.sleep("200 millis") // the writer goes on meanwhile
      yield* start(options(dirs))
      yield* Fiber.join(writing)
      yield* waitUntil(() => received.length >= 6000, Duration.seconds(15), () => `${received.length} of 6000`)
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(messages("api.shop"), expected(1000, 6000))
      assert.isBelow(atStop, 6000, "the restart happened mid-stream")
      assert.isAbove(checkpoint.files[0]!.head.offset, statSync(a.file).size / 10)
    }), 60_000)

  it.live("a deleted file is read to its end and released; an excluded namespace is ignored", () =>
    Effect.gen(function*() {
      const dirs = layout()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const { messages, received, start } = yield* harness()
      yield* start(options(dirs, { excludeNamespaces: ["kube-system"] }))
      const gone = dirs.container("job-5d8f7c-x2x9q", "batch")
      const hidden = dirs.container("dns-5d8f7c-x2x9q", "kube-system")
      yield* write(gone.file, "cri", 0, 100, 100_000)
      yield* write(hidden.file, "cri", 0, 100, 100_000)
      yield* waitUntil(() => messages("job.batch").length >= 100, Duration.seconds(10), () => `${messages("job.batch").length}`)
      assert.include(openFiles(), gone.file)
      assert.notInclude(openFiles(), hidden.file)
      unlinkSync(gone.link)
      unlinkSync(gone.file)
      yield* waitUntil(() => !openFiles().some((f) => f.startsWith(gone.file)), Duration.seconds(5), () => "file still open")
      assert.strictEqual(metric(yield* PrometheusMetrics.format(), "logtrain_input_files"), 0)
      assert.isFalse(received.some((p) => p.hostname.endsWith(".kube-system")))
      assert.isFalse(existsSync(gone.file))
    }))

  it.live("reading waits while the router is full, and goes on when it has room", () =>
    Effect.gen(function*() {
      const dirs = layout()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const f = dirs.container("api-5d8f7c-x2x9q", "shop")
      const { consume, messages, received, start } = yield* harness({ capacity: 50, consume: false })
      yield* start(options(dirs))
      yield* write(f.file, "docker", 0, 20_000, 1_000_000)
      yield* Effect.sleep("500 millis")
      const text = yield* PrometheusMetrics.format()
      // What Ingest holds plus the batch being handed over has been read — the poller gathers
      // looks of up to 64 KiB until it has 1024 packets, so at most 1024 lines and one look more:
      // the rest (1.6 MB) waits on disk, not in memory.
      const longest = Math.max(...readFileSync(f.file, "utf8").split("\n").map((l) => Buffer.byteLength(l) + 1))
      assert.isBelow(metric(text, `logtrain_input_records_total\\{input="kubernetes"\\}`), 2000)
      assert.isAtMost(metric(text, `logtrain_input_bytes_total\\{input="kubernetes"\\}`), 64 * 1024 + 1024 * longest)
      yield* consume
      yield* waitUntil(() => received.length >= 20_000, Duration.seconds(20), () => `${received.length}`)
      assert.deepStrictEqual(messages("api.shop"), expected(0, 20_000))
    }), 30_000)

  it.live("a malformed line is counted and skipped; an endless line is cut at the limit", () =>
    Effect.gen(function*() {
      const dirs = layout()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const f = dirs.container("api-5d8f7c-x2x9q", "shop")
      const { messages, received, start } = yield* harness()
      yield* start(options(dirs, { maxLineBytes: 1000 }))
      const pieces = Array.from({ length: 5 }, () => JSON.stringify({ log: "x".repeat(400), stream: "stdout", time: "2024-01-01T00:00:00Z" }))
      appendFileSync(f.file, [
        JSON.stringify({ log: "before\n", stream: "stdout" }),
        "{not json",
        ...pieces,
        JSON.stringify({ log: "end\n", stream: "stdout" }),
        JSON.stringify({ log: "after\n", stream: "stdout" })
      ].join("\n") + "\n")
      yield* waitUntil(() => messages("api.shop").includes("after"), Duration.seconds(5), () => JSON.stringify(messages("api.shop")))
      const got = messages("api.shop")
      assert.deepStrictEqual(got.map((m) => m.length), [6, 1000, 1000, 3, 5])
      assert.strictEqual(got.join("").replace(/x/g, "").length, "beforeendafter".length)
      const text = yield* PrometheusMetrics.format()
      assert.isAtLeast(metric(text, `logtrain_input_errors_total\\{input="kubernetes",reason="malformed"\\}`), 1)
      assert.isAtLeast(metric(text, "logtrain_input_lines_split_total"), 2)
      assert.strictEqual(received.length, 5)
    }))
})
