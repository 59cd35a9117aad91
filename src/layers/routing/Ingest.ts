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
 *
 * The queue holds the arrays offered, not their packets one by one: an offer that fits is queued
 * as it is (the offerer gives it up), and the router takes it as its chunk — or, for small offers
 * (a UDP datagram's), several joined into one. (An Effect Queue of packets copied each packet in
 * and out again, ~30 bytes of garbage and a few % of the relay's CPU per line.)
 */
import { Cause, Context, Effect, Layer, Stream } from "effect"
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

/** One offer's packets (or the part of it that fitted), and their bytes. */
interface Entry {
  readonly packets: ReadonlyArray<LogPacket>
  readonly bytes: number
}

/** An offer in line (see `line`), and how to wake it while it waits. */
interface Offerer {
  wake: (() => void) | undefined
}

/** An offer at least this large is handed to the router as it is; smaller ones are joined. */
const JOIN_BELOW = 64

export class Ingest extends Context.Service<Ingest, {
  /**
   * Enqueues packets, waiting for room. The array is the queue's once offered: not to be changed
   * by the offerer afterwards.
   */
  readonly offer: (packets: ReadonlyArray<LogPacket>) => Effect.Effect<void>
  /** Enqueues what fits without waiting; returns the number of packets that did not fit. */
  readonly offerOrDrop: (packets: ReadonlyArray<LogPacket>) => number
  /** Everything offered, in chunks of at most 1024, until `end`. */
  readonly packets: Stream.Stream<LogPacket>
  /** No more packets: the stream ends once what is queued, and what waits to be, has been taken. */
  readonly end: Effect.Effect<void>
  readonly capacity: number
}>()("logtrain/Ingest") {
  static readonly layer = (options: IngestOptions) =>
    Layer.effect(
      Ingest,
      Effect.gen(function*() {
        const capacity = options.capacity
        const maxBytes = options.maxBytes ?? (yield* MemoryBudget).ingest
        const counted = Number.isFinite(maxBytes)
        /** The offers queued, oldest first from `head`; the first may be partly taken (`offset`). */
        let entries: Array<Entry | undefined> = []
        let head = 0
        let offset = 0
        /** Packets and bytes queued. */
        let size = 0
        let bytes = 0
        let ended = false
        const limited = { wait: 0, drop: 0 }
        /**
         * Offers not done yet (some of their packets still to be queued), oldest first. Only the
         * first queues; the others wait their turn, and a new offer queues at once only when none
         * waits: a producer whose offer waits is not overtaken, again and again, by others whose
         * offers happen to come when there is room (the router wakes one offer per chunk taken).
         */
        const line: Array<Offerer> = []
        /** The router (whoever takes), waiting for packets. */
        let takers: Array<() => void> = []

        yield* Telemetry.gauge("logtrain_ingest_depth", "Packets waiting for the router.", {}, () => size)
        yield* Telemetry.gauge("logtrain_ingest_capacity", "Packets the ingest queue holds.", {}, () => capacity)
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

        /**
         * Wakes the router in a microtask, not right here: offers made meanwhile (the rest of a
         * socket callback's) are taken with this one.
         */
        const wakeTaker = () => {
          if (takers.length === 0) return
          const woken = takers
          takers = []
          for (const wake of woken) queueMicrotask(wake)
        }

        /** Queues `packets[from, from + n)`. */
        const enqueue = (packets: ReadonlyArray<LogPacket>, from: number, n: number) => {
          const part = from === 0 && n === packets.length ? packets : packets.slice(from, from + n)
          const partBytes = counted ? bytesOf(part) : 0
          entries.push({ packets: part, bytes: partBytes })
          size += n
          bytes += partBytes
          wakeTaker()
        }

        /** Wakes the first offer in line, if it waits. */
        const wakeFirst = () => {
          const first = line[0]
          if (first?.wake === undefined) return
          const wake = first.wake
          first.wake = undefined
          wake()
        }

        /** Until `me` is woken: first in line, and the router has taken something (or the wait is interrupted). */
        const wait = (me: Offerer) =>
          Effect.callback<void>((resume) => {
            me.wake = () => resume(Effect.void)
            return Effect.sync(() => {
              me.wake = undefined
            })
          })

        /** Offers `packets` from `from` on, in its turn; whatever does not fit waits for the router to take. */
        const put = (me: Offerer, packets: ReadonlyArray<LogPacket>, from: number): Effect.Effect<void> =>
          Effect.suspend(() => {
            if (line[0] !== me) return Effect.andThen(wait(me), put(me, packets, from))
            if (counted && bytes >= maxBytes) {
              limited.wait++
              return Effect.andThen(wait(me), put(me, packets, from))
            }
            const n = Math.min(capacity - size, packets.length - from)
            if (n <= 0) return Effect.andThen(wait(me), put(me, packets, from))
            enqueue(packets, from, n)
            return from + n === packets.length ? Effect.void : Effect.andThen(wait(me), put(me, packets, from + n))
          })

        /** Up to CHUNK packets off the front: an offer as it is when it is large enough, else joined. */
        const takeNow = (): ReadonlyArray<LogPacket> => {
          const first = entries[head]!
          let chunk: ReadonlyArray<LogPacket>
          if (offset === 0 && first.packets.length <= CHUNK && (first.packets.length >= JOIN_BELOW || size === first.packets.length)) {
            entries[head++] = undefined
            size -= first.packets.length
            bytes -= first.bytes
            chunk = first.packets
          } else {
            // Joined, or cut: CHUNK at most, copied once into an array of its size.
            const parts: Array<ReadonlyArray<LogPacket>> = []
            let n = 0
            while (n < CHUNK && size > 0) {
              const entry = entries[head]!
              const k = Math.min(CHUNK - n, entry.packets.length - offset)
              if (offset === 0 && k === entry.packets.length) {
                parts.push(entry.packets)
                bytes -= entry.bytes
                entries[head++] = undefined
              } else {
                parts.push(entry.packets.slice(offset, offset + k))
                if (counted) bytes -= bytesOf(entry.packets, offset, offset + k)
                offset += k
                if (offset === entry.packets.length) {
                  entries[head++] = undefined
                  offset = 0
                }
              }
              n += k
              size -= k
            }
            chunk = parts.length === 1 ? parts[0]! : parts[0]!.concat(...parts.slice(1))
          }
          if (head === entries.length) {
            entries = []
            head = 0
          } else if (head >= 1024 && head * 2 >= entries.length) {
            entries = entries.slice(head)
            head = 0
          }
          wakeFirst()
          return chunk
        }

        /** An offer that had to wait is done (queued all, or interrupted): the next in line goes on, and the end may come now. */
        const offerDone = (me: Offerer) =>
          Effect.sync(() => {
            const at = line.indexOf(me)
            if (at >= 0) line.splice(at, 1)
            wakeFirst()
            if (ended && line.length === 0) wakeTaker()
          })

        const done = Cause.done()
        /** The next chunk; Done once the queue has ended and everything in it (and waiting for it) is taken. */
        const pull: Effect.Effect<NonEmptyReadonlyArray<LogPacket>, Cause.Done> = Effect.callback((resume) => {
          if (size > 0) return resume(Effect.succeed(takeNow() as NonEmptyReadonlyArray<LogPacket>))
          if (ended && line.length === 0) return resume(done)
          const wake = () => resume(pull)
          takers.push(wake)
          return Effect.sync(() => {
            takers = takers.filter((taker) => taker !== wake)
          })
        })

        return Ingest.of({
          offer: (packets) =>
            Effect.suspend(() => {
              if (packets.length === 0 || ended) return Effect.void
              // Taken as it is, when it fits and no offer waits: no Effect more than that.
              if (line.length === 0 && !(counted && bytes >= maxBytes) && capacity - size >= packets.length) {
                enqueue(packets, 0, packets.length)
                return Effect.void
              }
              const me: Offerer = { wake: undefined }
              line.push(me)
              return Effect.ensuring(put(me, packets, 0), offerDone(me))
            }),
          offerOrDrop: (packets) => {
            if (packets.length === 0) return 0
            if (ended) return packets.length
            if (counted && bytes >= maxBytes) {
              limited.drop += packets.length
              return packets.length
            }
            const n = Math.min(capacity - size, packets.length)
            if (n > 0) enqueue(packets, 0, n)
            return packets.length - Math.max(0, n)
          },
          packets: Stream.fromPull(Effect.succeed(pull)),
          end: Effect.sync(() => {
            ended = true
            wakeTaker()
          }),
          capacity
        })
      })
    )
}
