import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { MemoryDatasource } from "../../../src/layers/datasources/Memory.ts"
import * as DrainSink from "../../../src/layers/drains/DrainSink.ts"
import { Drains } from "../../../src/layers/routing/Drains.ts"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"
import * as MemoryBudget from "../../../src/layers/MemoryBudget.ts"
import type { Feed, Receipt } from "../../../src/domain/Receipt.ts"
import { RouteTable } from "../../../src/layers/routing/RouteTable.ts"
import * as RouterCore from "../../../src/layers/routing/RouterCore.ts"
import * as MemoryDrains from "../../helpers/MemoryDrains.ts"

const A = "syslog+tcp://a.example:514"
const B = "syslog+tcp://b.example:514"
const C = "syslog+tcp://c.example:514"

const packet = (hostname: string, message: string, tag = "web") =>
  LogPacket.make({ time: new Date(0), hostname, tag, message })

/** The routing core with memory drains and a memory datasource, in a scope the test can close. */
const start = (
  settings: Partial<DrainSink.DrainSettings> = {},
  whenFull: "drop" | "block" = "drop",
  budget?: MemoryBudget.Budget
) =>
  Effect.gen(function*() {
    const { drains, layer: factory } = yield* MemoryDrains.make
    const scope = yield* Scope.make()
    const core = RouterCore.layer({
      ingestCapacity: 1000,
      drainSettings: { ...DrainSink.defaultSettings, ...settings },
      whenFull,
      budget
    }).pipe(Layer.provide(factory))
    const context = yield* Layer.buildWithScope(Layer.provideMerge(MemoryDatasource.layer(), core), scope)
    return {
      drains,
      ingest: Context.get(context, Ingest),
      routes: Context.get(context, MemoryDatasource),
      table: Context.get(context, RouteTable),
      open: Context.get(context, Drains),
      close: Scope.close(scope, Exit.void)
    }
  })

/** Blocking routing of "api" to A and B, A's receiver held (its gate closed): the drain of A and the harness. */
const blockedOnA = (settings: Partial<DrainSink.DrainSettings>) =>
  Effect.gen(function*() {
    const t = yield* start(settings, "block")
    const held = yield* t.drains.sink(A)
    yield* held.gate.close
    yield* t.routes.add({ hostname: "api", endpoint: A })
    yield* t.routes.add({ hostname: "api", endpoint: B })
    return { t, held }
  })

/** A file's receipt that wants every drain and tells `parked` of each park. */
const parkingReceipt = (parked: (endpoint: string, packet: LogPacket.LogPacket) => void): Receipt => ({
  wants: () => true,
  offered: () => {},
  routed: () => {},
  settle: () => {},
  park: (endpoint: string, packet: LogPacket.LogPacket, _feed: Feed) => void parked(endpoint, packet)
})

/** Twenty messages, numbered from `from`. */
const lines = (from: number) => Array.from({ length: 20 }, (_, i) => `${from + i}`)

const settle = Effect.gen(function*() {
  for (let i = 0; i < 30; i++) yield* Effect.yieldNow
})

describe("Router", () => {
  it.effect("sends each packet to the drains of its hostname and counts the rest as dead", () =>
    Effect.gen(function*() {
      const t = yield* start()
      yield* t.routes.add({ hostname: "api", endpoint: A })
      yield* t.routes.add({ hostname: "api", endpoint: B })
      yield* t.routes.add({ hostname: "web", endpoint: B })
      yield* t.ingest.offer([packet("api", "a1"), packet("web", "w1"), packet("nobody", "n1"), packet("api", "a2")])
      yield* settle
      assert.deepStrictEqual(t.drains.received(A), ["a1", "a2"])
      assert.deepStrictEqual(t.drains.received(B), ["a1", "w1", "a2"])
      assert.deepStrictEqual(t.drains.received(C), [])
    }))

  it.effect("sends every hostname to the wildcard's drains", () =>
    Effect.gen(function*() {
      const t = yield* start()
      yield* t.routes.add({ hostname: "*", endpoint: C })
      yield* t.routes.add({ hostname: "api", endpoint: A })
      yield* t.ingest.offer([packet("api", "a1"), packet("anything", "x1")])
      yield* settle
      assert.deepStrictEqual(t.drains.received(C), ["a1", "x1"])
      assert.deepStrictEqual(t.drains.received(A), ["a1"])
    }))

  it.effect("opens a drain on its first packet, not when its route appears", () =>
    Effect.gen(function*() {
      const t = yield* start()
      yield* t.routes.add({ hostname: "api", endpoint: A })
      yield* settle
      assert.strictEqual(t.open.openCount(), 0)
      yield* t.ingest.offer([packet("api", "a1")])
      yield* settle
      assert.strictEqual(t.open.openCount(), 1)
      assert.strictEqual(t.drains.opened.get(A), 1)
    }))

  it.effect("closes a drain once no route uses its endpoint, after flushing what it held", () =>
    Effect.gen(function*() {
      const t = yield* start()
      const sink = yield* t.drains.sink(A)
      yield* sink.gate.close
      yield* t.routes.add({ hostname: "api", endpoint: A })
      yield* t.routes.add({ hostname: "web", endpoint: A })
      yield* t.ingest.offer([packet("api", "a1"), packet("web", "w1")])
      yield* settle
      yield* t.routes.remove({ hostname: "api", endpoint: A })
      yield* settle
      assert.strictEqual(t.open.openCount(), 1, "web still uses the endpoint")
      yield* t.routes.remove({ hostname: "web", endpoint: A })
      yield* settle
      assert.strictEqual(t.open.openCount(), 0)
      assert.deepStrictEqual(t.drains.received(A), [], "nothing was delivered yet: the receiver holds")
      yield* sink.gate.open
      yield* settle
      assert.deepStrictEqual(t.drains.received(A), ["a1", "w1"], "the closing drain flushed")
      yield* t.ingest.offer([packet("api", "late")])
      yield* settle
      assert.deepStrictEqual(t.drains.received(A), ["a1", "w1"])
    }))

  it.effect("keeps routing the valid routes of a change that holds an invalid drain URL", () =>
    Effect.gen(function*() {
      const t = yield* start()
      yield* t.routes.replace([
        { hostname: "api", endpoint: "bogus://nope" },
        { hostname: "api", endpoint: A },
        { hostname: "web", endpoint: "syslog+tcp://h:99999" }
      ])
      assert.deepStrictEqual(t.table.routes(), [{ hostname: "api", endpoint: A }])
      yield* t.ingest.offer([packet("api", "a1")])
      yield* settle
      assert.deepStrictEqual(t.drains.received(A), ["a1"])
    }))

  it.effect("a dead drain does not hold up the others: they get everything, it drops what it cannot buffer", () =>
    Effect.gen(function*() {
      const t = yield* start({ bufferSize: 50, retryBaseDelay: Duration.millis(100) })
      const dead = yield* t.drains.sink(A)
      dead.failNext(Number.MAX_SAFE_INTEGER)
      yield* t.routes.add({ hostname: "api", endpoint: A })
      yield* t.routes.add({ hostname: "api", endpoint: B })
      for (let round = 0; round < 10; round++) {
        yield* t.ingest.offer(Array.from({ length: 20 }, (_, i) => packet("api", `m${round * 20 + i}`)))
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      assert.strictEqual(t.drains.received(B).length, 200)
      assert.deepStrictEqual(t.drains.received(A), [])
      const a = t.open.get(A)!
      assert.strictEqual(a.stats.depth, 50)
      assert.strictEqual(a.stats.dropped.buffer_full, 150)
    }))

  it.effect("closing the core waits for every drain to deliver what it holds", () =>
    Effect.gen(function*() {
      const t = yield* start()
      const sink = yield* t.drains.sink(A)
      yield* sink.gate.close
      yield* t.routes.add({ hostname: "api", endpoint: A })
      yield* t.ingest.offer(Array.from({ length: 500 }, (_, i) => packet("api", `m${i}`)))
      const closing = yield* Effect.forkChild(t.close)
      yield* settle
      yield* sink.gate.open
      yield* Fiber.join(closing)
      assert.strictEqual(t.drains.received(A).length, 500)
    }))

  it.effect("with DRAIN_WHEN_FULL=block, waits for a full drain instead of dropping, keeping every drain's order", () =>
    Effect.gen(function*() {
      const { held: slow, t } = yield* blockedOnA({ bufferSize: 50, batchSize: 10 })
      const messages = Array.from({ length: 300 }, (_, i) => `m${i}`)
      const offering = yield* Effect.forkChild(t.ingest.offer(messages.map((m) => packet("api", m))))
      yield* settle
      // The router waits on the full drain: the other drain gets no further than it, for now.
      assert.isAtMost(t.drains.received(B).length, 51)
      yield* slow.gate.open
      yield* Fiber.join(offering)
      for (let i = 0; i < 20; i++) yield* settle
      assert.deepStrictEqual(t.drains.received(A), messages)
      assert.deepStrictEqual(t.drains.received(B), messages)
      assert.strictEqual(t.open.get(A)!.stats.dropped.buffer_full, 0)
    }))

  it.effect("with DRAIN_WHEN_FULL=block, network packets wait for a busy drain once it holds half its buffer or three batches, and fill it once it fails", () =>
    Effect.gen(function*() {
      const { held: slow, t } = yield* blockedOnA({ bufferSize: 50, batchSize: 10, retryBaseDelay: Duration.millis(100) })
      yield* Effect.forkChild(t.ingest.offer(Array.from({ length: 300 }, (_, i) => packet("api", `m${i}`))))
      yield* settle
      // Sending (slowly): three batches, one of them in flight (more than half of 50), so that a
      // lane still holds two batches after taking one, and may split.
      assert.strictEqual(t.open.get(A)!.stats.depth, 30)
      // Failing: the router waits for a full buffer, as before.
      slow.failNext(Number.MAX_SAFE_INTEGER)
      yield* slow.gate.open
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 20; i++) yield* settle
        yield* TestClock.adjust("1 second")
      }
      assert.strictEqual(t.open.get(A)!.stats.depth, 50)
      assert.strictEqual(t.open.get(A)!.stats.dropped.buffer_full, 0)
    }))

  it.effect("with DRAIN_WHEN_FULL=block, a drain that is closing does not hold the router", () =>
    Effect.gen(function*() {
      const { t } = yield* blockedOnA({ bufferSize: 5, batchSize: 5, flushTimeout: Duration.seconds(1) })
      yield* t.ingest.offer(Array.from({ length: 20 }, (_, i) => packet("api", `m${i}`)))
      yield* settle
      // The route goes: its drain closes (giving up after its flush timeout), and the router goes on.
      yield* t.routes.remove({ hostname: "api", endpoint: A })
      yield* settle
      yield* TestClock.adjust("2 seconds")
      for (let i = 0; i < 20; i++) yield* settle
      assert.strictEqual(t.drains.received(B).length, 20)
    }))

  it.effect("with DRAIN_WHEN_FULL=block, a file's packets wait for a busy drain (half full) rather than park on it, and are parked once it fails", () =>
    Effect.gen(function*() {
      const { held: slow, t } = yield* blockedOnA({ bufferSize: 5, batchSize: 5, retryBaseDelay: Duration.millis(100) })
      const parked: Array<string> = []
      const receipt = parkingReceipt((_endpoint, parkedPacket) => parked.push(parkedPacket.message))
      const file = (messages: ReadonlyArray<string>) => messages.map((m) => LogPacket.make({ ...packet("api", m), receipt }))
      yield* t.ingest.offer(file(lines(0)))
      yield* settle
      // Busy (sending, slowly): the router waits for it, as for a network packet, once it holds
      // half its buffer (a file needs no more in memory: it is the buffer).
      assert.deepStrictEqual(parked, [])
      assert.isBelow(t.drains.received(B).length, 20)
      assert.strictEqual(t.open.get(A)!.stats.depth, 2)
      yield* slow.gate.open
      for (let i = 0; i < 20; i++) yield* settle
      assert.deepStrictEqual([t.drains.received(A), t.drains.received(B), parked], [lines(0), lines(0), []])
      // Failing: what the router waits with is parked (the drain fails while it waits), and so is
      // the rest; the other drain gets everything.
      yield* slow.gate.close
      slow.failNext(Number.MAX_SAFE_INTEGER)
      yield* t.ingest.offer(file(lines(20)))
      yield* settle
      yield* slow.gate.open
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 20; i++) yield* settle
        yield* TestClock.adjust("1 second")
      }
      assert.deepStrictEqual(t.drains.received(B), [...lines(0), ...lines(20)])
      assert.deepStrictEqual(t.drains.received(A), lines(0))
      assert.deepStrictEqual(parked, lines(20).slice(5))
    }))

  it.effect("past the memory budget, a dead drain drops network packets (reason memory) but parks a file's, and the other drain gets all", () =>
    Effect.gen(function*() {
      const budget = MemoryBudget.make(MemoryBudget.MIN_LIMIT)
      const t = yield* start({ bufferSize: 1_000_000, retryBaseDelay: Duration.millis(100) }, "drop", budget)
      const dead = yield* t.drains.sink(A)
      dead.failNext(Number.MAX_SAFE_INTEGER)
      yield* t.routes.add({ hostname: "api", endpoint: A })
      yield* t.routes.add({ hostname: "api", endpoint: B })
      const line = "x".repeat(16 * 1024)
      for (let round = 0; round < 20; round++) {
        yield* t.ingest.offer(Array.from({ length: 20 }, (_, i) => packet("api", `${round * 20 + i} ${line}`)))
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      const a = t.open.get(A)!
      assert.strictEqual(t.drains.received(B).length, 400)
      assert.isAbove(a.stats.dropped.memory, 0)
      assert.strictEqual(a.stats.depth + a.stats.dropped.memory, 400, "what the dead drain does not hold is counted")
      assert.isAtMost(budget.drains.total, budget.drains.bytes)
      // A file's packets (with a receipt) are parked on the full drain, not dropped.
      const parked: Array<string> = []
      const receipt = parkingReceipt((endpoint) => parked.push(endpoint))
      const dropped = a.stats.dropped.memory
      const depth = a.stats.depth
      yield* t.ingest.offer(Array.from({ length: 5 }, (_, i) => LogPacket.make({ ...packet("api", `file ${i} ${line}`), receipt })))
      yield* settle
      // The budget's last bytes (less than a 16 KB line, too few for the network packets) take one.
      assert.deepStrictEqual([a.stats.depth - depth, parked], [1, [A, A, A, A]])
      assert.strictEqual(a.stats.dropped.memory, dropped)
      assert.strictEqual(t.drains.received(B).length, 405)
    }))

  it.effect("with DRAIN_WHEN_FULL=block, waits for a drain whose share of the memory budget is full", () =>
    Effect.gen(function*() {
      const budget = MemoryBudget.make(MemoryBudget.MIN_LIMIT)
      const t = yield* start({ bufferSize: 1_000_000 }, "block", budget)
      const slow = yield* t.drains.sink(A)
      yield* slow.gate.close
      yield* t.routes.add({ hostname: "api", endpoint: A })
      const line = "x".repeat(16 * 1024)
      const messages = Array.from({ length: 400 }, (_, i) => `${i} ${line}`)
      const offering = yield* Effect.forkChild(Effect.forEach(messages, (m) => t.ingest.offer([packet("api", m)])))
      yield* settle
      assert.isAtMost(budget.drains.total, budget.drains.bytes)
      yield* slow.gate.open
      yield* Fiber.join(offering)
      for (let i = 0; i < 20; i++) yield* settle
      assert.strictEqual(t.drains.received(A).length, 400)
      assert.strictEqual(t.open.get(A)!.stats.dropped.memory, 0)
    }))
})
