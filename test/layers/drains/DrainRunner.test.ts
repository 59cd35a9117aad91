import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import * as DrainRunner from "../../../src/layers/drains/DrainRunner.ts"
import * as DrainSink from "../../../src/layers/drains/DrainSink.ts"
import * as MemoryBudget from "../../../src/layers/MemoryBudget.ts"
import * as MemorySink from "../../helpers/MemorySink.ts"

const packet = (message: string, hostname = "app", tag = "web") =>
  LogPacket.make({ time: new Date(0), hostname, tag, message })

const settings = (overrides: Partial<DrainSink.DrainSettings>): DrainSink.DrainSettings => ({
  ...DrainSink.defaultSettings,
  ...overrides
})

/** Runs a drain in its own scope, so tests can close it and see what closing does. */
const open = (
  sink: MemorySink.MemorySink,
  overrides: Partial<DrainSink.DrainSettings> = {},
  budget: MemoryBudget.Budget = MemoryBudget.unlimited()
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const handle = yield* DrainRunner.make({ display: "memory://", kind: "Memory", sink }).pipe(
      Scope.provide(scope),
      Effect.provideService(DrainSink.DrainSettings, settings(overrides)),
      Effect.provideService(MemoryBudget.MemoryBudget, budget)
    )
    return { handle, close: Scope.close(scope, Exit.void) }
  })

/** Lets forked workers run until they block. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

/**
 * Bursts of 200 packets into a drain whose receiver opens after the first, with time for its lanes
 * to split (a second apart at most) between the others: 800 in all.
 */
const underPressure = (sink: { readonly gate: { readonly open: Effect.Effect<void> } }, burst: (count: number) => void) =>
  Effect.gen(function*() {
    burst(200)
    yield* sink.gate.open
    yield* settle
    burst(200)
    yield* TestClock.adjust("2 seconds")
    burst(200)
    yield* settle
    yield* TestClock.adjust("2 seconds")
    burst(200)
    yield* settle
  })

describe("DrainRunner", () => {
  it.effect("delivers every packet in order, in batches no larger than batchSize", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      const { handle } = yield* open(sink, { batchSize: 7 })
      const messages = Array.from({ length: 100 }, (_, i) => `m${i}`)
      for (const m of messages) assert.isTrue(handle.offer(packet(m)))
      yield* settle
      assert.deepStrictEqual(sink.messages(), messages)
      assert.isTrue(sink.batches.every((batch) => batch.length <= 7))
      assert.deepStrictEqual([handle.stats.received, handle.stats.sent, handle.stats.depth], [100, 100, 0])
    }))

  it.effect("keeps batches under batchBytes, but always sends a packet bigger than the limit on its own", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      const { handle } = yield* open(sink, { batchBytes: 300 })
      yield* sink.gate.close
      handle.offer(packet("x".repeat(100)))
      handle.offer(packet("y".repeat(100)))
      handle.offer(packet("z".repeat(1000)))
      handle.offer(packet("w"))
      yield* settle
      yield* sink.gate.open
      yield* settle
      // x and y are 146 approximate bytes each: together they fit in 300; z alone is over the limit.
      assert.deepStrictEqual(sink.batches.map((b) => b.map((p) => p.message[0]).join("")), ["xy", "z", "w"])
      for (const batch of sink.batches) {
        const bytes = batch.reduce((n, p) => n + LogPacket.approximateBytes(p), 0)
        assert.isTrue(batch.length === 1 || bytes <= 300, `batch of ${batch.length} holds ${bytes} bytes`)
      }
      assert.strictEqual(sink.messages().length, 4)
    }))

  it.effect("drops new packets when the buffer is full, counts them, and never blocks the caller", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      yield* sink.gate.close
      const { handle } = yield* open(sink, { bufferSize: 10, batchSize: 5 })
      const accepted = Array.from({ length: 25 }, (_, i) => handle.offer(packet(`m${i}`)))
      assert.strictEqual(accepted.filter(Boolean).length, 10)
      assert.strictEqual(handle.stats.dropped.buffer_full, 15)
      yield* sink.gate.open
      yield* settle
      assert.deepStrictEqual(sink.messages(), Array.from({ length: 10 }, (_, i) => `m${i}`))
    }))

  it.effect("holds packets within its share of the memory budget: past it, new ones are dropped and counted as memory", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      yield* sink.gate.close
      const budget = MemoryBudget.make(MemoryBudget.MIN_LIMIT)
      const { handle } = yield* open(sink, { bufferSize: 1_000_000 }, budget)
      // 16 KB lines: far fewer than bufferSize fit in the budget's drains' share.
      const line = "x".repeat(16 * 1024)
      const accepted = Array.from({ length: 1000 }, (_, i) => handle.offer(packet(`${i} ${line}`))).filter(Boolean).length
      const size = LogPacket.approximateBytes(packet(`0 ${line}`))
      // A drain that delivers (its sends wait, they have not failed) may fill three quarters of the share.
      assert.strictEqual(accepted, Math.floor(0.75 * budget.drains.bytes / size))
      assert.strictEqual(handle.stats.dropped.memory, 1000 - accepted)
      assert.strictEqual(handle.stats.dropped.buffer_full, 0)
      assert.strictEqual(handle.stats.bytes, budget.drains.total)
      assert.isAtMost(budget.drains.total, budget.drains.bytes)
      assert.isFalse(handle.hasRoom(packet(line)))
      // Delivered: the bytes are given back, and the drain takes packets again.
      yield* sink.gate.open
      yield* settle
      assert.deepStrictEqual([handle.stats.sent, handle.stats.bytes, budget.drains.total], [accepted, 0, 0])
      assert.isTrue(handle.hasRoom(packet(line)))
      assert.isTrue(handle.offer(packet(line)))
    }))

  it.effect("gives the budget back for packets it drops for good (refused) and when it closes", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      const budget = MemoryBudget.make(MemoryBudget.MIN_LIMIT)
      const { close, handle } = yield* open(sink, { batchSize: 1, flushTimeout: Duration.seconds(1) }, budget)
      sink.failNext(1, "Rejected")
      handle.offer(packet("refused"))
      yield* settle
      assert.deepStrictEqual([handle.stats.dropped.rejected, handle.stats.bytes, budget.drains.total], [1, 0, 0])
      // A receiver that is down: what the drain holds comes back to the budget when it closes.
      sink.failNext(1_000_000)
      for (let i = 0; i < 10; i++) handle.offer(packet(`held ${i}`))
      yield* settle
      assert.isAbove(budget.drains.total, 0)
      const closing = yield* Effect.forkChild(close)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(closing)
      assert.deepStrictEqual([handle.stats.dropped.shutdown, budget.drains.total, budget.drains.members], [10, 0, 0])
    }))

  it.effect("with DRAIN_WHEN_FULL=block, whenRoom waits for the budget too", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      yield* sink.gate.close
      const budget = MemoryBudget.make(MemoryBudget.MIN_LIMIT)
      const { handle } = yield* open(sink, { bufferSize: 1_000_000 }, budget)
      const line = "x".repeat(64 * 1024)
      while (handle.offer(packet(line)));
      const waiting = yield* Effect.forkChild(handle.whenRoom(packet(line)))
      yield* settle
      assert.isUndefined(waiting.pollUnsafe(), "the buffer has room in packets, not in bytes")
      yield* sink.gate.open
      assert.isTrue(yield* Fiber.join(waiting))
    }))

  it.effect("retries a failed batch with capped exponential backoff, in order, before anything after it", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      const { handle } = yield* open(sink, {
        batchSize: 2,
        retryBaseDelay: Duration.millis(100),
        retryMaxDelay: Duration.seconds(1)
      })
      sink.failNext(6)
      for (let i = 0; i < 6; i++) handle.offer(packet(`m${i}`))
      yield* settle
      assert.deepStrictEqual(sink.messages(), [])
      assert.isFalse(handle.stats.healthy)
      // 100, 200, 400, 800, then capped at 1000 ms (each jittered by at most 20%).
      yield* TestClock.adjust("5 seconds")
      yield* settle
      assert.deepStrictEqual(sink.messages(), ["m0", "m1", "m2", "m3", "m4", "m5"])
      assert.deepStrictEqual([handle.stats.errors, handle.stats.retries, handle.stats.sent], [6, 6, 6])
      assert.isTrue(handle.stats.healthy)
    }))

  it.effect("does not wait longer than retryMaxDelay between attempts, however long the outage", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      const { handle } = yield* open(sink, { retryBaseDelay: Duration.millis(100), retryMaxDelay: Duration.seconds(2) })
      sink.failNext(1000)
      handle.offer(packet("m"))
      yield* settle
      yield* TestClock.adjust("60 seconds")
      yield* settle
      const before = sink.attempts
      yield* TestClock.adjust("2 seconds")
      yield* settle
      assert.strictEqual(sink.attempts, before + 1)
    }))

  it.effect("drops a batch the receiver rejects for good, counted as rejected, and goes on", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      const { handle } = yield* open(sink, { batchSize: 1 })
      sink.failNext(1, "Rejected")
      handle.offer(packet("bad"))
      handle.offer(packet("good"))
      yield* settle
      assert.deepStrictEqual(sink.messages(), ["good"])
      assert.deepStrictEqual([handle.stats.dropped.rejected, handle.stats.retries], [1, 0])
    }))

  it.effect("waits up to batchTimeout for a batch to fill, and not at all once it is full", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      const { handle } = yield* open(sink, { batchSize: 3, batchTimeout: Duration.seconds(1) })
      handle.offer(packet("a"))
      yield* settle
      assert.strictEqual(sink.batches.length, 0)
      yield* TestClock.adjust("999 millis")
      yield* settle
      assert.strictEqual(sink.batches.length, 0)
      yield* TestClock.adjust("1 millis")
      yield* settle
      assert.deepStrictEqual(sink.messages(), ["a"])
      handle.offer(packet("b"))
      handle.offer(packet("c"))
      yield* settle
      assert.strictEqual(sink.batches.length, 1)
      handle.offer(packet("d"))
      yield* settle
      assert.deepStrictEqual(sink.batches.map((b) => b.length), [1, 3])
    }))

  it.effect("flushes what it holds when its scope closes", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      yield* sink.gate.close
      const { close, handle } = yield* open(sink, { batchSize: 10 })
      for (let i = 0; i < 35; i++) handle.offer(packet(`m${i}`))
      const closing = yield* Effect.forkChild(close)
      yield* settle
      assert.isUndefined(closing.pollUnsafe())
      yield* sink.gate.open
      yield* Fiber.join(closing)
      assert.strictEqual(sink.messages().length, 35)
      assert.strictEqual(handle.stats.dropped.shutdown, 0)
    }))

  it.effect("gives up after flushTimeout when the receiver stays down, counting what is lost", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      const { close, handle } = yield* open(sink, { batchSize: 10, flushTimeout: Duration.seconds(5) })
      sink.failNext(Number.MAX_SAFE_INTEGER)
      for (let i = 0; i < 35; i++) handle.offer(packet(`m${i}`))
      const closing = yield* Effect.forkChild(close)
      yield* settle
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(closing)
      assert.strictEqual(handle.stats.dropped.shutdown, 35)
      assert.strictEqual(handle.stats.depth, 0)
    }))

  it.effect("a worker killed by a defect is reported, and what it held is counted as dropped at close", () =>
    Effect.gen(function*() {
      const memory = yield* MemorySink.make()
      // A sink whose sender cannot be made (a bug): the worker dies at its start.
      const sink = { ...memory, sender: Effect.die(new TypeError("Agent is not a constructor")) }
      const { close, handle } = yield* open(sink as unknown as MemorySink.MemorySink, { batchSize: 10 })
      for (let i = 0; i < 3; i++) handle.offer(packet(`m${i}`))
      yield* settle
      assert.isFalse(handle.stats.healthy)
      yield* close
      assert.strictEqual(handle.stats.dropped.shutdown, 3)
      assert.strictEqual(handle.stats.depth, 0)
    }))

  it.effect("adds workers under pressure and keeps each source's packets in order across the split", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      yield* sink.gate.close
      const { handle } = yield* open(sink, { batchSize: 5, maxWorkers: 4, bufferSize: 100_000 })
      const sources = ["a", "b", "c", "d", "e", "f", "g", "h"]
      let n = 0
      const burst = (count: number) => {
        for (let i = 0; i < count; i++) {
          const source = sources[i % sources.length]!
          handle.offer(packet(`${source}:${n++}`, source))
        }
      }
      yield* underPressure(sink, burst)
      assert.isAbove(handle.stats.lanes, 1)
      assert.isAtMost(handle.stats.lanes, 4)
      assert.strictEqual(sink.senders, handle.stats.lanes)
      const received = sink.messages()
      assert.strictEqual(received.length, 800)
      for (const source of sources) {
        const numbers = received.filter((m) => m.startsWith(`${source}:`)).map((m) => Number(m.split(":")[1]))
        assert.deepStrictEqual(numbers, numbers.toSorted((x, y) => x - y), `order of source ${source}`)
      }
    }))

  it.effect("keeps one worker for one source under pressure: a split would share nothing out", () =>
    Effect.gen(function*() {
      const sink = yield* MemorySink.make()
      yield* sink.gate.close
      const { handle } = yield* open(sink, { batchSize: 5, maxWorkers: 4, bufferSize: 100_000 })
      let n = 0
      const burst = (count: number) => {
        for (let i = 0; i < count; i++) handle.offer(packet(`a:${n++}`, "a"))
      }
      yield* underPressure(sink, burst)
      assert.strictEqual(handle.stats.lanes, 1)
      assert.strictEqual(sink.senders, 1)
      const numbers = sink.messages().map((m) => Number(m.split(":")[1]))
      assert.deepStrictEqual(numbers, Array.from({ length: 800 }, (_, i) => i))
    }))
})
