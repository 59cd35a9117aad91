/**
 * The one bounded queue between every input and the router.
 *
 * Inputs that can push back on their sender (TCP, TLS, files) `offer`, which waits while the queue
 * is full, so a saturated router slows their readers and the kernel's flow control slows the
 * sender. Inputs that cannot (UDP) `offerOrDrop`, which never waits and returns how many packets
 * did not fit, for the input to count. The router takes packets in chunks, never one by one.
 */
import { Cause, Context, Effect, Layer, Queue, Stream } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import type { LogPacket } from "../domain/LogPacket.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Most packets the router takes at once: enough to amortize the per-chunk cost, few enough that
 * drain workers and socket callbacks run often.
 */
const CHUNK = 1024

export interface IngestOptions {
  /** Packets the queue holds before offers wait (or drop). */
  readonly capacity: number
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
        yield* Telemetry.gauge("logtrain_ingest_depth", "Packets waiting for the router.", {}, () =>
          Queue.sizeUnsafe(queue))
        yield* Telemetry.gauge("logtrain_ingest_capacity", "Packets the ingest queue holds.", {}, () =>
          options.capacity)
        return Ingest.of({
          offer: (packets) => packets.length === 0 ? Effect.void : Effect.asVoid(Queue.offerAll(queue, packets)),
          offerOrDrop: (packets) => packets.length === 0 ? 0 : Queue.offerAllUnsafe(queue, packets).length,
          // takeBetween with a minimum of 1 never yields an empty array; its type just does not say so.
          packets: Stream.fromPull(Effect.succeed(
            Queue.takeBetween(queue, 1, CHUNK) as unknown as Effect.Effect<NonEmptyReadonlyArray<LogPacket>, Cause.Done>
          )),
          end: Effect.asVoid(Queue.end(queue)),
          capacity: options.capacity
        })
      })
    )
}
