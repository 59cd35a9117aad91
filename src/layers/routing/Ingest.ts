/**
 * The one bounded queue between every input and the router.
 *
 * Inputs that can push back on their sender (TCP, TLS, files) `offer`, which waits while the queue
 * is full, so a saturated router slows their readers and the kernel's flow control slows the
 * sender. Inputs that cannot (UDP) `offerOrDrop`, which never waits and returns how many packets
 * did not fit, for the input to count. The router takes packets in chunks, never one by one.
 *
 * The queue is bounded twice: in packets (INGEST_BUFFER_SIZE) and in bytes, its share of the
 * memory budget (MemoryBudget.ts), so that 16 KB lines cannot make a thousand packets 16 MB. Past
 * its bytes, `offer` waits too and `offerOrDrop` drops; both are counted
 * (`logtrain_memory_limited_total{holder="ingest"}`). An offer is let in while the queue is under
 * its bytes, so each producer may overshoot by one offer (one read).
 */
import { Cause, Context, Effect, Layer, Queue, Stream } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import { approximateBytes, type LogPacket } from "../../domain/LogPacket.ts"
import { MemoryBudget } from "../MemoryBudget.ts"
import * as Telemetry from "../Telemetry.ts"

/**
 * Most packets the router takes at once: enough to amortize the per-chunk cost, few enough that
 * drain workers and socket callbacks run often.
 */
const CHUNK = 1024

export interface IngestOptions {
  /** Packets the queue holds before offers wait (or drop). */
  readonly capacity: number
  /** Bytes the queue holds before offers wait (or drop); by default the memory budget's share. */
  readonly maxBytes?: number | undefined
}

const bytesOf = (packets: ReadonlyArray<LogPacket>, from = 0, to = packets.length): number => {
  let n = 0
  for (let i = from; i < to; i++) n += approximateBytes(packets[i]!)
  return n
}

export class Ingest extends Context.Service<Ingest, {
  /** Enqueues packets, waiting for room. */
  readonly offer: (packets: ReadonlyArray<LogPacket>) => Effect.Effect<void>
  /** Enqueues what fits without waiting; returns the number of packets that did not fit. */
  readonly offerOrDrop: (packets: ReadonlyArray<LogPacket>) => number
  /** Everything offered, in chunks of at most 1024, until `end`. */
  readonly packets: Stream.Stream<LogPacket>
  /** No more packets: the stream ends once what is queued has been taken. */
  readonly end: Effect.Effect<void>
  readonly capacity: number
}>()("logtrain/Ingest") {
  static readonly layer = (options: IngestOptions) =>
    Layer.effect(
      Ingest,
      Effect.gen(function*() {
        const queue = yield* Queue.bounded<LogPacket, Cause.Done>(options.capacity)
        const maxBytes = options.maxBytes ?? (yield* MemoryBudget).ingest
        const counted = Number.isFinite(maxBytes)
        let bytes = 0
        const limited = { wait: 0, drop: 0 }
        /** Offers waiting for the queue to fall under its bytes. */
        const waiting = new Set<() => void>()
        const roomForBytes = Effect.callback<void>((resume) => {
          if (bytes < maxBytes) return resume(Effect.void)
          const wake = () => resume(Effect.void)
          waiting.add(wake)
          return Effect.sync(() => void waiting.delete(wake))
        })
        yield* Telemetry.gauge("logtrain_ingest_depth", "Packets waiting for the router.", {}, () =>
          Queue.sizeUnsafe(queue))
        yield* Telemetry.gauge("logtrain_ingest_capacity", "Packets the ingest queue holds.", {}, () =>
          options.capacity)
        if (counted) {
          yield* Telemetry.gauge("logtrain_memory_held_bytes", "Bytes of log data held, by holder (approximate).", { holder: "ingest" }, () =>
            bytes)
          for (const action of ["wait", "drop"] as const) {
            yield* Telemetry.counter(
              "logtrain_memory_limited_total",
              "Times a holder of log data was at its share of MEMORY_LIMIT: offers that waited (readers paused), packets dropped (UDP).",
              { holder: "ingest", action },
              () => limited[action]
            )
          }
        }
        const put = (packets: ReadonlyArray<LogPacket>): Effect.Effect<void> =>
          Effect.suspend(() => {
            if (bytes >= maxBytes) {
              limited.wait++
              return Effect.andThen(roomForBytes, put(packets))
            }
            bytes += bytesOf(packets)
            return Effect.asVoid(Queue.offerAll(queue, packets))
          })
        const take = Queue.takeBetween(queue, 1, CHUNK) as unknown as Effect.Effect<NonEmptyReadonlyArray<LogPacket>, Cause.Done>
        return Ingest.of({
          offer: (packets) => packets.length === 0 ? Effect.void : counted ? put(packets) : Effect.asVoid(Queue.offerAll(queue, packets)),
          offerOrDrop: (packets) => {
            if (packets.length === 0) return 0
            if (!counted) return Queue.offerAllUnsafe(queue, packets).length
            if (bytes >= maxBytes) {
              limited.drop += packets.length
              return packets.length
            }
            const rest = Queue.offerAllUnsafe(queue, packets).length
            bytes += bytesOf(packets, 0, packets.length - rest)
            return rest
          },
          // takeBetween with a minimum of 1 never yields an empty array; its type just does not say so.
          packets: Stream.fromPull(Effect.succeed(
            counted
              ? Effect.map(take, (chunk) => {
                bytes -= bytesOf(chunk)
                if (waiting.size > 0 && bytes < maxBytes) {
                  const woken = [...waiting]
                  waiting.clear()
                  for (const wake of woken) wake()
                }
                return chunk
              })
              : take
          )),
          end: Effect.asVoid(Queue.end(queue)),
          capacity: options.capacity
        })
      })
    )
}
