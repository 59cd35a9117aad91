/**
 * Why the container-log input lets only a few files read at once (see `readTurn` in
 * ContainerLogs.ts): many fibers each holding a batch while they wait to offer it to one bounded
 * queue keep ~all of it alive past V8's young generation.
 *
 * 3,000,000 small objects, made in batches of 380 by `producers` fibers and offered to a queue of
 * 1000 that one consumer drains; with `turns`, a semaphore of that many permits around making and
 * offering a batch. Each case runs in its own process (young generation 4 MB, as in the image) and
 * reports its time, its GC time and its full GCs.
 *
 *   node bench/queue-producers.ts
 *   BENCH_V8_FLAGS=--no-allocation-site-pretenuring node bench/queue-producers.ts
 *
 * The second form is the one to read: with pretenuring on, V8 sometimes decides early in a run to
 * allocate these objects in the old generation, and then every case is slow (runs flip between
 * ~0.6 s and ~2 s). Measured (second form): 1 producer 589–621 ms, GC 108–124 ms; 52 producers
 * 2164–2210 ms, GC 1336–1371 ms; with 1 turn 658–847 ms; with 4 turns 997–1148 ms.
 */
import { Cause, Effect, Fiber, Queue, Semaphore, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { observeGc } from "./tools/gc.ts"

const TOTAL = 3_000_000
const BATCH = 380

interface Item {
  readonly host: string
  readonly message: string
  readonly time: Date
}

const run = async (producers: number, turns: number) => {
  const gc = observeGc()
  let made = 0
  let sum = 0
  const program = Effect.gen(function*() {
    const queue = yield* Queue.bounded<Item, Cause.Done>(1000)
    // takeBetween with a minimum of 1 never yields an empty array; its type just does not say so.
    const pull = Queue.takeBetween(queue, 1, 1024) as unknown as Effect.Effect<readonly [Item, ...Array<Item>], Cause.Done>
    const consumer = yield* Stream.fromPull(Effect.succeed(pull)).pipe(
      Stream.runForEachArray((chunk) =>
        Effect.andThen(
          Effect.sync(() => {
            for (const item of chunk) sum += item.host.length
          }),
          Effect.yieldNow
        )
      ),
      Effect.forkChild
    )
    const turn = yield* Semaphore.make(Math.max(1, turns))
    const offerOne = Effect.suspend(() => {
      const batch: Array<Item> = []
      for (let k = 0; k < BATCH; k++, made++) {
        batch.push({ host: `host-${made % 7}`, message: `message ${made} ${"x".repeat(100)}`, time: new Date(made) })
      }
      return Queue.offerAll(queue, batch)
    })
    const step = turns > 0 ? turn.withPermit(offerOne) : offerOne
    const producer = Effect.fnUntraced(function*() {
      // `made` grows in `offerOne`.
      // oxlint-disable-next-line no-unmodified-loop-condition
      while (made < TOTAL) {
        yield* step
        yield* Effect.yieldNow
      }
    })
    yield* Effect.all(Array.from({ length: producers }, () => producer()), { concurrency: "unbounded", discard: true })
    yield* Queue.end(queue)
    yield* Fiber.await(consumer)
  })
  const started = performance.now()
  await Effect.runPromise(program)
  const ms = performance.now() - started
  console.log(JSON.stringify({ producers, turns, ms: Math.round(ms), ...(await gc.stop()), check: sum }))
}

if (process.argv[2] !== undefined) {
  await run(Number(process.argv[2]), Number(process.argv[3] ?? 0))
} else {
  for (const [producers, turns] of [[1, 0], [52, 0], [52, 1], [52, 4]] as const) {
    const out = execFileSync(process.execPath, ["--max-semi-space-size=4", ...(process.env.BENCH_V8_FLAGS ?? "").split(" ").filter(Boolean), import.meta.filename, String(producers), String(turns)], {
      encoding: "utf8"
    })
    const r = JSON.parse(out) as { ms: number; gcMs: number; fullGcs: number }
    const label = `${producers} producer${producers === 1 ? "" : "s"}${turns > 0 ? `, ${turns} turn${turns === 1 ? "" : "s"}` : ""}`
    console.log(`${label.padEnd(24)} ${String(r.ms).padStart(6)} ms   GC ${String(r.gcMs).padStart(5)} ms   full GCs ${r.fullGcs}`)
  }
}
