/**
 * Multiline joining through the container log input, the real router and drains: stack traces
 * written as a runtime writes them (CRI lines cut into partial pieces), through a stop in the
 * middle of a trace, a rotation, and a drain that is down and then reads its backlog again — each
 * drain gets every event byte-exact, in order, once. And a regex annotation built to backtrack
 * catastrophically is refused, counted, and holds nothing up.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { appendFileSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { podInfoFromName } from "../../../src/domain/Kubernetes.ts"
import { MemoryDatasource } from "../../../src/layers/datasources/Memory.ts"
import * as ContainerLogs from "../../../src/layers/inputs/containers/ContainerLogs.ts"
import { PodMetadata } from "../../../src/layers/kubernetes/PodMetadata.ts"
import { Checkpoints } from "../../../src/layers/storage/Checkpoints.ts"
import * as RouterCore from "../../../src/layers/routing/RouterCore.ts"
import { waitUntil } from "../../helpers/DrainsHarness.ts"
import * as MemoryDrains from "../../helpers/MemoryDrains.ts"
import * as NodeLayout from "../../helpers/NodeLayout.ts"

const LIVE = "syslog+tcp://live.example:514"
const DEAD = "syslog+tcp://dead.example:514"
const T = "2026-12-05T11:59:01.000000000Z"

const fixtures = join(import.meta.dirname, "../../fixtures/multiline")
const fixture = (name: string) => ({
  lines: readFileSync(join(fixtures, `${name}.txt`), "utf8").replace(/\n$/, "").split("\n"),
  events: JSON.parse(readFileSync(join(fixtures, `${name}.json`), "utf8")) as Array<string>
})

/** A line as CRI, its text cut into pieces of about 20 bytes (P … P F). */
const cri = (text: string, stream = "stderr") => {
  let out = ""
  let at = 0
  while (text.length - at > 20) {
    out += `${T} ${stream} P ${text.slice(at, at + 20)}\n`
    at += 20
  }
  return out + `${T} ${stream} F ${text.slice(at)}\n`
}

const metric = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1))
}

// Each trace twice: the fixture, then (after a rotation) again with the first number of each line
// changed, so that the events repeat in kind but not in text.
const renumber = (line: string) => line.replace(/(\d+)/, "$1-2")
const second = (lines: ReadonlyArray<string>) => lines.map(renumber)
const want = (f: { readonly events: ReadonlyArray<string> }) => [
  ...f.events,
  ...f.events.map((event) => event.split("\n").map(renumber).join("\n"))
]
const half = (lines: ReadonlyArray<string>) => Math.floor(lines.length / 2)

/** The input into the router and memory drains; pods annotated as `annotations` says (by pod name). */
const node = (annotations: Record<string, string>) =>
  Effect.gen(function*() {
    const dirs = NodeLayout.make()
    yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
    const memory = yield* MemoryDrains.make
    const metadata = Layer.succeed(PodMetadata, PodMetadata.of({
      describe: (namespace, pod) => Effect.succeed({ ...podInfoFromName(namespace, pod, false), multiline: annotations[pod] })
    }))
    const start = (routes: Record<string, ReadonlyArray<string>>) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const core = RouterCore.layer({
          ingestCapacity: 1000,
          drainSettings: { bufferSize: 2, batchSize: 1, retryBaseDelay: Duration.millis(20), retryMaxDelay: Duration.millis(50), flushTimeout: Duration.seconds(1) }
        }).pipe(Layer.provide(memory.layer), Layer.provideMerge(Checkpoints.layer(dirs.state)))
        const input = ContainerLogs.layer({
          path: dirs.containers,
          excludeNamespaces: [],
          onlyAkkeris: false,
          maxLineBytes: 64 * 1024,
          partialTimeout: Duration.seconds(5),
          multilineTimeout: Duration.seconds(1),
          pollInterval: Duration.millis(20),
          rescanInterval: Duration.millis(200),
          checkpointInterval: Duration.millis(100),
          rotateWait: Duration.millis(300)
        }).pipe(Layer.provide(metadata))
        const datasource = MemoryDatasource.layer(
          Object.entries(routes).flatMap(([hostname, endpoints]) => endpoints.map((endpoint) => ({ hostname, endpoint })))
        )
        const context = yield* Layer.buildWithScope(Layer.mergeAll(input, datasource).pipe(Layer.provideMerge(core)), scope)
        return { stop: Scope.close(scope, Exit.void), routes: Context.get(context, MemoryDatasource) }
      })
    return { dirs, start, sink: memory.drains.sink, received: memory.drains.received }
  })

describe("multiline joining in the container log input", () => {
  it.live("java, python and go traces in CRI pieces, through a stop mid-trace, a rotation and a drain down: every drain gets each event byte-exact, once, in order", () =>
    Effect.gen(function*() {
      const apps = [
        { pod: "shop-5d8f7c-aaaaa", rule: "java", hostname: "shop.prod" },
        { pod: "worker-5d8f7c-bbbbb", rule: "python", hostname: "worker.prod" },
        { pod: "batch-5d8f7c-ccccc", rule: "go", hostname: "batch.prod" }
      ]
      const { dirs, received, sink, start } = yield* node(Object.fromEntries(apps.map((app) => [app.pod, app.rule])))
      const files = apps.map((app) => ({ ...app, ...fixture(app.rule), ...dirs.container(app.pod, "prod") }))
      const routes = Object.fromEntries(apps.map((app) => [app.hostname, [LIVE, `${DEAD}/${app.hostname}`]]))
      for (const app of apps) (yield* sink(`${DEAD}/${app.hostname}`)).failNext(1_000_000)

      let running = yield* start(routes)
      // The first half of each trace file: the stop comes in the middle of a trace.
      for (const f of files) appendFileSync(f.file, f.lines.slice(0, half(f.lines)).map((line) => cri(line)).join(""))
      yield* Effect.sleep("150 millis")
      yield* running.stop
      running = yield* start(routes)
      for (const f of files) appendFileSync(f.file, f.lines.slice(half(f.lines)).map((line) => cri(line)).join(""))
      yield* Effect.sleep("600 millis")
      // Rotated by rename (between events), then the second copy in the new file.
      for (const f of files) {
        renameSync(f.file, `${f.file}.1`)
        writeFileSync(f.file, second(f.lines).map((line) => cri(line)).join(""))
      }
      const total = files.reduce((n, f) => n + want(f).length, 0)
      yield* waitUntil(() => received(LIVE).length >= total, Duration.seconds(15), () => `live ${received(LIVE).length} of ${total}`)
      yield* Effect.sleep("500 millis")
      // Every event, byte-exact, in order per app, once.
      const byApp = (messages: ReadonlyArray<string>, f: typeof files[number]) => {
        const mine = new Set(want(f))
        return messages.filter((m) => mine.has(m))
      }
      for (const f of files) {
        assert.deepStrictEqual(byApp(received(LIVE), f), want(f), `${f.rule} on the live drain`)
      }
      const all = new Set(files.flatMap(want))
      assert.deepStrictEqual(received(LIVE).filter((m) => !all.has(m)), [], "nothing else")
      assert.strictEqual(received(LIVE).length, total, "nothing twice")
      // The drains that were down read their backlog again from disk, across the stop and the rotation.
      assert.isAbove(metric(yield* PrometheusMetrics.format(), "logtrain_router_parked_total"), 0, "drains were parked on the files")
      for (const app of apps) (yield* sink(`${DEAD}/${app.hostname}`)).failNext(0)
      for (const f of files) {
        const endpoint = `${DEAD}/${f.hostname}`
        yield* waitUntil(() => received(endpoint).length >= want(f).length, Duration.seconds(15), () => `${endpoint} ${received(endpoint).length}`)
      }
      yield* Effect.sleep("500 millis")
      for (const f of files) assert.deepStrictEqual(received(`${DEAD}/${f.hostname}`), want(f), `${f.rule} on the drain that was down`)
    }), 60_000)

  it.live("a regex built to backtrack catastrophically is refused and counted; its lines and another app's flow one by one, the event loop never stalls", () =>
    Effect.gen(function*() {
      const { dirs, received, start } = yield* node({
        "evil-5d8f7c-aaaaa": "regex:(a+)+$",
        "slow-5d8f7c-bbbbb": "regex:x*x*x*x*x*y",
        "calm-5d8f7c-ccccc": "java"
      })
      const evil = dirs.container("evil-5d8f7c-aaaaa", "prod")
      const slow = dirs.container("slow-5d8f7c-bbbbb", "prod")
      const calm = dirs.container("calm-5d8f7c-ccccc", "prod")
      yield* start({ "evil.prod": [LIVE], "slow.prod": [LIVE], "calm.prod": [LIVE] })
      const delay = monitorEventLoopDelay({ resolution: 10 })
      delay.enable()
      const attack = `${"a".repeat(30_000)}b`
      // Passes the check, and would take hours on a backtracking engine; a pattern sees the first
      // 1024 characters of a line (no y there): every line joins the event before it.
      const slowAttack = `${"x".repeat(30_000)}y`
      for (let i = 0; i < 20; i++) {
        appendFileSync(evil.file, cri(attack, "stdout"))
        appendFileSync(slow.file, cri(slowAttack, "stdout"))
        appendFileSync(calm.file, cri(`calm ${i}`, "stdout"))
      }
      const slowLines = () => received(LIVE).filter((m) => m.startsWith("x")).flatMap((m) => m.split("\n"))
      yield* waitUntil(
        () => received(LIVE).filter((m) => m.startsWith("calm")).length >= 20 && received(LIVE).filter((m) => m === attack).length >= 20 && slowLines().length >= 20,
        Duration.seconds(20),
        () => JSON.stringify(received(LIVE).map((m) => m.length))
      )
      delay.disable()
      const messages = received(LIVE)
      assert.deepStrictEqual(messages.filter((m) => m.startsWith("calm")), Array.from({ length: 20 }, (_, i) => `calm ${i}`))
      // Refused: each line is its own event.
      assert.strictEqual(messages.filter((m) => m === attack).length, 20)
      // Every line of the other, two at a time: a third would pass KUBERNETES_MULTILINE_MAX_SIZE (64 KiB).
      assert.deepStrictEqual(messages.filter((m) => m.startsWith("x")).map((m) => m.split("\n").length), Array.from({ length: 10 }, () => 2))
      assert.deepStrictEqual(slowLines(), Array.from({ length: 20 }, () => slowAttack))
      const text = yield* PrometheusMetrics.format()
      assert.strictEqual(metric(text, 'logtrain_input_multiline_refused_total{input="kubernetes"}'), 1)
      assert.strictEqual(metric(text, 'logtrain_input_multiline_cut_total{input="kubernetes"}'), 9)
      // The longest the event loop waited, measured (a backtracking (a+)+$ on 30k a's would take longer than the universe).
      const maxMs = delay.max / 1e6
      console.log(`event loop delay while reading: max ${maxMs.toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms`)
      assert.isBelow(maxMs, 5000)
    }), 60_000)
})
