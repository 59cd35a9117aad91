import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"

const packets = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => LogPacket.make({ time: new Date(0), hostname: "h", tag: "t", message: String(from + i) }))

const messages = (chunks: ReadonlyArray<ReadonlyArray<LogPacket.LogPacket>>) => chunks.flat().map((p) => Number(p.message))

/** The next chunk the router would take. */
const take = (ingest: Ingest["Service"]) =>
  ingest.packets.pipe(Stream.chunks, Stream.take(1), Stream.runCollect, Effect.map((chunks) => chunks[0]!))

const withIngest = <A, E>(capacity: number, body: (ingest: Ingest["Service"]) => Effect.Effect<A, E>, maxBytes?: number) =>
  Effect.gen(function*() {
    return yield* body(yield* Ingest)
  }).pipe(Effect.provide(Ingest.layer({ capacity, maxBytes })))

const big = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => LogPacket.make({ time: new Date(0), hostname: "h", tag: "t", message: `${from + i} ${"x".repeat(16 * 1024)}` }))

describe("Ingest", () => {
  it.effect("offers wait while the queue is full and everything comes out once, in order, in chunks of at most 1024", () =>
    withIngest(100, (ingest) =>
      Effect.gen(function*() {
        // Three producers, each offering more than the queue holds.
        const producers = yield* Effect.forEach([0, 1, 2], (p) =>
          Effect.forkChild(Effect.forEach([0, 1, 2, 3, 4], (k) => ingest.offer(packets(p * 100_000 + k * 700, 700)))))
        const taken: Array<ReadonlyArray<LogPacket.LogPacket>> = []
        while (taken.reduce((n, c) => n + c.length, 0) < 3 * 5 * 700) {
          const chunk = yield* take(ingest)
          assert.isAtMost(chunk.length, 1024)
          assert.isAtMost(chunk.length, 100)
          taken.push(chunk)
        }
        yield* Effect.forEach(producers, Fiber.join)
        const got = messages(taken)
        assert.strictEqual(got.length, 10_500)
        assert.strictEqual(new Set(got).size, 10_500)
        for (const p of [0, 1, 2]) {
          const mine = got.filter((m) => Math.floor(m / 100_000) === p)
          assert.deepStrictEqual(mine, mine.toSorted((a, b) => a - b), "each producer's packets in its order")
        }
      })))

  it.effect("an offer that waits is queued before offers made after it, even those that would fit (no producer starves)", () =>
    withIngest(10, (ingest) =>
      Effect.gen(function*() {
        yield* ingest.offer(packets(0, 10))
        // A waits for room.
        const a = yield* Effect.forkChild(ingest.offer(packets(100, 10)))
        yield* Effect.yieldNow
        // The router takes; B offers right then, before A has run again (as another connection's
        // read would, between the router's take and A's turn).
        const taken: Array<ReadonlyArray<LogPacket.LogPacket>> = []
        const offers: Array<Fiber.Fiber<void>> = []
        const router = yield* Effect.forkChild(ingest.packets.pipe(Stream.runForEachArray((chunk) =>
          Effect.sync(() => {
            taken.push(chunk)
            if (taken.length === 1) offers.push(Effect.runFork(ingest.offer(packets(200, 5))))
          })
        )))
        while (taken.reduce((n, c) => n + c.length, 0) < 25) yield* Effect.yieldNow
        yield* Fiber.join(a)
        yield* Fiber.join(offers[0]!)
        yield* Fiber.interrupt(router)
        assert.deepStrictEqual(messages(taken).slice(10), [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 200, 201, 202, 203, 204])
      })))

  it.effect("offerOrDrop takes what fits and says how many did not", () =>
    withIngest(10, (ingest) =>
      Effect.gen(function*() {
        assert.strictEqual(ingest.offerOrDrop(packets(0, 4)), 0)
        assert.strictEqual(ingest.offerOrDrop(packets(4, 10)), 4)
        assert.deepStrictEqual(messages([yield* take(ingest)]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      })))

  it.effect("end: what is queued and what waits to be queued still comes out, then the stream ends; later offers are refused", () =>
    withIngest(5, (ingest) =>
      Effect.gen(function*() {
        const waiting = yield* Effect.forkChild(ingest.offer(packets(0, 12)))
        yield* Effect.yieldNow
        yield* ingest.end
        const all = yield* ingest.packets.pipe(Stream.runCollect)
        yield* Fiber.join(waiting)
        assert.deepStrictEqual(all.map((p) => Number(p.message)), Array.from({ length: 12 }, (_, i) => i))
        yield* ingest.offer(packets(100, 3))
        assert.strictEqual(ingest.offerOrDrop(packets(200, 3)), 3)
      })))

  it.effect("an offer that waits can be interrupted, and leaves the queue working", () =>
    withIngest(3, (ingest) =>
      Effect.gen(function*() {
        yield* ingest.offer(packets(0, 3))
        const stuck = yield* Effect.forkChild(ingest.offer(packets(3, 3)))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(stuck)
        assert.deepStrictEqual(messages([yield* take(ingest)]), [0, 1, 2])
        yield* ingest.offer(packets(10, 2))
        assert.deepStrictEqual(messages([yield* take(ingest)]), [10, 11])
      })))

  it.effect("offers wait while the queue holds its bytes, however few packets that is, and go on once the router takes them", () =>
    withIngest(1000, (ingest) =>
      Effect.gen(function*() {
        // 80 KiB: four 16 KB lines and a bit.
        yield* ingest.offer(big(0, 4))
        yield* ingest.offer(big(4, 1))
        const waiting = yield* Effect.forkChild(ingest.offer(big(5, 1)))
        for (let i = 0; i < 10; i++) yield* Effect.yieldNow
        assert.isUndefined(waiting.pollUnsafe(), "past its bytes, with room for 995 more packets")
        assert.strictEqual(ingest.offerOrDrop(big(6, 3)), 3, "UDP's packets are dropped")
        assert.deepStrictEqual(messages([yield* take(ingest)]).length, 5)
        yield* Fiber.join(waiting)
        assert.deepStrictEqual((yield* take(ingest)).map((p) => p.message.split(" ")[0]), ["5"])
      }), 80 * 1024))

  it.effect("small offers (a datagram's) are joined into chunks, large ones cut to 1024; all in order, once", () =>
    withIngest(10_000, (ingest) =>
      Effect.gen(function*() {
        for (let i = 0; i < 300; i++) assert.strictEqual(ingest.offerOrDrop(packets(i, 1)), 0)
        yield* ingest.offer(packets(300, 2500))
        yield* ingest.offer(packets(2800, 10))
        const taken: Array<ReadonlyArray<LogPacket.LogPacket>> = []
        while (taken.reduce((n, c) => n + c.length, 0) < 2810) taken.push(yield* take(ingest))
        for (const chunk of taken) assert.isAtMost(chunk.length, 1024)
        assert.isAtLeast(taken[0]!.length, 300, "the datagrams in one chunk, not one each")
        assert.deepStrictEqual(messages(taken), Array.from({ length: 2810 }, (_, i) => i))
      })))
})
