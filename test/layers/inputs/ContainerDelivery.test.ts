/**
 * The file is the buffer, through the real router and drains (MemorySinks that can be made to
 * fail): a file's lines are forgotten only once every drain they were routed to is done with them;
 * a drain that is down holds back itself alone, its backlog on disk, and gets every line, in order,
 * once it is back; a restart re-reads only what some drain still needed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { appendFileSync, existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { RouteChange } from "../../../src/domain/Route.ts"
import { MemoryDatasource } from "../../../src/layers/datasources/Memory.ts"
import * as ContainerLogs from "../../../src/layers/inputs/containers/ContainerLogs.ts"
import * as PodMetadata from "../../../src/layers/kubernetes/PodMetadata.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import { RouteTable } from "../../../src/layers/routing/RouteTable.ts"
import { Checkpoints } from "../../../src/layers/storage/Checkpoints.ts"
import * as RouterCore from "../../../src/layers/routing/RouterCore.ts"
import { waitUntil } from "../../helpers/DrainsHarness.ts"
import * as ContainerHarness from "../../helpers/ContainerHarness.ts"
import * as MemoryDrains from "../../helpers/MemoryDrains.ts"
import * as NodeLayout from "../../helpers/NodeLayout.ts"

const DEAD = "syslog+tcp://dead.example:514"
const LIVE = "syslog+tcp://live.example:514"
const OTHER = "syslog+tcp://other.example:514"

const BUFFER = 200

/** A series' value in Prometheus text: its name, and its labels as they are printed (the first series if none are given). */
const metric = (text: string, name: string, labels?: string) => {
  const line = text.split("\n").find((l) =>
    labels === undefined ? l.startsWith(`${name} `) || l.startsWith(`${name}{`) : l.startsWith(`${name}{${labels}} `)
  )
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1))
}

const drain = (endpoint: string, more = "") => `drain="${endpoint}",kind="Syslog"${more}`

/** Lines `from`..`from+count-1` appended to a file at once, CRI. */
const append = (file: string, from: number, count: number) =>
  appendFileSync(file, Array.from({ length: count }, (_, i) => NodeLayout.criLine(from + i)).join(""))

/**
 * A node running the container log input into the router, drains of MemorySinks, routes held in
 * memory; started and stopped at will (a stop closes its scope: the shutdown path, drains flushing
 * and the last checkpoint included). The sinks outlive restarts, so what each endpoint received
 * is counted across them.
 */
const node = Effect.gen(function*() {
  const dirs = NodeLayout.make()
  yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
  const memory = yield* MemoryDrains.make
  const start = (routes: Record<string, ReadonlyArray<string>>, options: Partial<ContainerLogs.Options> = {}, routesAfter?: Duration.Duration) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
      const core = RouterCore.layer({
        ingestCapacity: 1000,
        drainSettings: {
          bufferSize: BUFFER,
          batchSize: 50,
          retryBaseDelay: Duration.millis(20),
          retryMaxDelay: Duration.millis(100),
          flushTimeout: Duration.seconds(1)
        }
      }).pipe(Layer.provide(memory.layer), Layer.provideMerge(Checkpoints.layer(dirs.state)))
      const input = ContainerLogs.layer(ContainerHarness.options(dirs, options)).pipe(Layer.provide(PodMetadata.fromNames(false)))
      const list = Object.entries(routes).flatMap(([hostname, endpoints]) => endpoints.map((endpoint) => ({ hostname, endpoint })))
      // A datasource slow to load (as Kubernetes' first list): its routes come after `routesAfter`.
      const datasource = routesAfter === undefined
        ? MemoryDatasource.layer(list)
        : Layer.mergeAll(MemoryDatasource.layer([]), Layer.effectDiscard(Effect.gen(function*() {
          const check = yield* (yield* Readiness).register("datasource:slow")
          const table = yield* RouteTable
          yield* Effect.forkScoped(Effect.andThen(
            Effect.sleep(routesAfter),
            Effect.andThen(table.apply("slow", RouteChange.Replace({ routes: list })), check.ready)
          ))
        })))
      const context = yield* Layer.buildWithScope(Layer.mergeAll(input, datasource).pipe(Layer.provideMerge(core)), scope)
      return { stop: Scope.close(scope, Exit.void), routes: Context.get(context, MemoryDatasource) }
    })
  const sink = (endpoint: string) => memory.drains.sink(endpoint)
  const received = (endpoint: string) => memory.drains.received(endpoint)
  return { dirs, start, sink, received }
})

describe("container logs: the file is the buffer", () => {
  it.live("after a restart, lines wait on disk until the datasources have loaded their routes (none is taken for one with no route)", () =>
    Effect.gen(function*() {
      const { dirs, received, start } = yield* node
      const api = dirs.container("api-5d8f7c-x2x9q", "shop")
      const first = yield* start({ "api.shop": [LIVE] })
      append(api.file, 0, 100)
      yield* waitUntil(() => received(LIVE).length >= 100, Duration.seconds(10), () => `${received(LIVE).length} of 100`)
      yield* first.stop
      // Written while logtrain is down; its routes take a second to load when it starts again.
      append(api.file, 100, 200)
      const before = metric(yield* PrometheusMetrics.format(), "logtrain_dead_packets_total")
      yield* start({ "api.shop": [LIVE] }, {}, Duration.seconds(1))
      yield* waitUntil(() => received(LIVE).length >= 300, Duration.seconds(10), () => `${received(LIVE).length} of 300`)
      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual(received(LIVE), NodeLayout.lines(0, 300), "every line once, in order")
      const dead = metric(yield* PrometheusMetrics.format(), "logtrain_dead_packets_total") - (Number.isNaN(before) ? 0 : before)
      assert.strictEqual(dead, 0, "no line found no route")
    }), 30_000)

  it.live("a drain that is down holds back only itself: the app's other drain and another app get every line at once, and it gets them all, in order, once back", () =>
    Effect.gen(function*() {
      const { dirs, received, sink, start } = yield* node
      const api = dirs.container("api-5d8f7c-x2x9q", "shop")
      const web = dirs.container("web-5d8f7c-x2x9q", "shop")
      const dead = yield* sink(DEAD)
      dead.failNext(1_000_000)
      yield* start({ "api.shop": [DEAD, LIVE], "web.shop": [OTHER] })
      const count = 5000
      for (let i = 0; i < count; i += 500) {
        append(api.file, i, 500)
        append(web.file, i, 500)
        yield* Effect.sleep("20 millis")
      }
      yield* waitUntil(() => received(LIVE).length >= count && received(OTHER).length >= count, Duration.seconds(10), () =>
        `live ${received(LIVE).length}, other ${received(OTHER).length} of ${count}`)
      assert.deepStrictEqual(received(LIVE), NodeLayout.lines(0, count), "the app's live drain got every line, in order")
      assert.deepStrictEqual(received(OTHER), NodeLayout.lines(0, count))
      assert.strictEqual(received(DEAD).length, 0)
      const text = yield* PrometheusMetrics.format()
      // The dead drain's backlog is on disk: it holds no more than its buffer in memory.
      assert.isAtMost(metric(text, "logtrain_drain_buffer_depth", drain(DEAD)), BUFFER)
      assert.isAbove(metric(text, "logtrain_input_backlog_bytes", 'input="kubernetes"'), 0)
      assert.isAbove(metric(text, "logtrain_router_parked_total"), 0)
      assert.strictEqual(metric(text, "logtrain_drain_dropped_total", drain(DEAD, ',reason="buffer_full"')), 0)

      dead.failNext(0)
      yield* waitUntil(() => received(DEAD).length >= count, Duration.seconds(15), () => `dead ${received(DEAD).length} of ${count}`)
      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual(received(DEAD), NodeLayout.lines(0, count), "every line, in order, none twice")
      // Caught up: it takes the head's packets again.
      append(api.file, count, 10)
      yield* waitUntil(() => received(DEAD).length >= count + 10, Duration.seconds(5), () => `dead ${received(DEAD).length}`)
      assert.deepStrictEqual(received(DEAD).slice(count), NodeLayout.lines(count, 10))
      assert.deepStrictEqual(received(LIVE), NodeLayout.lines(0, count + 10))
      assert.strictEqual(metric(yield* PrometheusMetrics.format(), "logtrain_input_backlog_bytes", 'input="kubernetes"'), 0)
    }), 60_000)

  it.live("a stop while a drain is down keeps its place: after the restart it gets what it missed, the drain that had everything gets nothing twice", () =>
    Effect.gen(function*() {
      const { dirs, received, sink, start } = yield* node
      const api = dirs.container("api-5d8f7c-x2x9q", "shop")
      const dead = yield* sink(DEAD)
      dead.failNext(1_000_000)
      const first = yield* start({ "api.shop": [DEAD, LIVE] })
      append(api.file, 0, 1000)
      yield* waitUntil(() => received(LIVE).length >= 1000, Duration.seconds(10), () => `live ${received(LIVE).length}`)
      yield* first.stop
      const saved = JSON.parse(readFileSync(join(dirs.state, "container-logs.json"), "utf8")) as {
        files: Array<{ head: { from: number }; behind: Record<string, { from: number }> }>
      }
      assert.strictEqual(Object.keys(saved.files[0]!.behind).length, 1, "the dead drain's place is kept, by a hash of its URL")
      assert.notInclude(JSON.stringify(saved), "dead.example")
      // Written while logtrain is away.
      append(api.file, 1000, 500)
      dead.failNext(0)
      yield* start({ "api.shop": [DEAD, LIVE] })
      yield* waitUntil(() => received(DEAD).length >= 1500 && received(LIVE).length >= 1500, Duration.seconds(15), () =>
        `dead ${received(DEAD).length}, live ${received(LIVE).length} of 1500`)
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(received(DEAD), NodeLayout.lines(0, 1500))
      assert.deepStrictEqual(received(LIVE), NodeLayout.lines(0, 1500), "the live drain got nothing twice")
    }), 60_000)

  it.live("a drain further behind than KUBERNETES_MAX_BACKLOG loses its oldest lines, counted; then it goes on", () =>
    Effect.gen(function*() {
      const COUNT = 20_000
      const { dirs, received, sink, start } = yield* node
      const api = dirs.container("api-5d8f7c-x2x9q", "shop")
      const dead = yield* sink(DEAD)
      dead.failNext(1_000_000)
      // Each line is ~55 bytes: 256 KiB is about 4,700 lines (more than what the router and the
      // drains hold at once: a drain that is merely busy for a moment loses nothing).
      yield* start({ "api.shop": [DEAD, LIVE] }, { maxBacklogBytes: 256 * 1024 })
      for (let i = 0; i < COUNT; i += 2000) {
        append(api.file, i, 2000)
        yield* Effect.sleep("50 millis")
      }
      yield* waitUntil(() => received(LIVE).length >= COUNT, Duration.seconds(15), () => `live ${received(LIVE).length}`)
      assert.deepStrictEqual(received(LIVE), NodeLayout.lines(0, COUNT), "the live drain lost nothing")
      dead.failNext(0)
      yield* waitUntil(() => received(DEAD).includes(`line ${COUNT - 1}`), Duration.seconds(10), () => `dead ${received(DEAD).length}`)
      const got = received(DEAD)
      const text = yield* PrometheusMetrics.format()
      const skipped = metric(text, "logtrain_drain_dropped_total", drain(DEAD, ',reason="backlog_limit"'))
      assert.isAbove(skipped, 0)
      assert.strictEqual(got.length + skipped, COUNT, `${got.length} delivered + ${skipped} skipped`)
      // What it got is in order, the newest lines.
      const first = Number(got[BUFFER]!.slice(5))
      assert.deepStrictEqual(got.slice(BUFFER), NodeLayout.lines(first, got.length - BUFFER))
    }), 60_000)

  it.live("a route removed while its drain is behind no longer holds the file back", () =>
    Effect.gen(function*() {
      const { dirs, received, sink, start } = yield* node
      const api = dirs.container("api-5d8f7c-x2x9q", "shop")
      const dead = yield* sink(DEAD)
      dead.failNext(1_000_000)
      const { routes } = yield* start({ "api.shop": [DEAD, LIVE] })
      append(api.file, 0, 2000)
      yield* waitUntil(() => received(LIVE).length >= 2000, Duration.seconds(10), () => `live ${received(LIVE).length}`)
      const behind = () => {
        const file = join(dirs.state, "container-logs.json")
        return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { files: Array<{ behind: object }> }).files[0]?.behind ?? {} : {}
      }
      yield* waitUntil(() => Object.keys(behind()).length === 1, Duration.seconds(5), () => "the dead drain held back")
      yield* routes.remove({ hostname: "api.shop", endpoint: DEAD })
      append(api.file, 2000, 10)
      yield* waitUntil(() => Object.keys(behind()).length === 0, Duration.seconds(5), () => JSON.stringify(behind()))
      assert.strictEqual(metric(yield* PrometheusMetrics.format(), "logtrain_input_backlog_bytes", 'input="kubernetes"'), 0)
    }), 30_000)
})
