/**
 * The fan-out of live tails: the lines logtail receives go to the open tails of their hostname.
 * In memory (here) for one replica; through Redis pub/sub (redis/RedisTails.ts) when several
 * replicas share the work, any of them receiving a line that a tail on another one shows.
 *
 * `publish` runs on the hot path, synchronously, once per chunk of packets. A tail's queue is
 * bounded: a client that reads too slowly misses lines (`logtail_tail_dropped_total`) rather than
 * holding up the others.
 */
import { Context, Effect, Layer, Queue, type Scope } from "effect"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as Rfc5424 from "../../domain/syslog/Rfc5424.ts"
import * as Telemetry from "../Telemetry.ts"

export class TailFeed extends Context.Service<TailFeed, {
  /** Hands packets to the tails of their hostnames (here, or on any replica). */
  readonly publish: (packets: ReadonlyArray<LogPacket>) => void
  /** A queue of a hostname's lines (RFC 5424, each ending in a newline) for this tail, while the scope lasts. */
  readonly subscribe: (hostname: string) => Effect.Effect<Queue.Dequeue<string>, never, Scope.Scope>
}>()("logtrain/logtail/TailFeed") {}

/** A tail's line of a packet: the RFC 5424 text it came as, else formatted. */
export const lineOf = (packet: LogPacket): string => `${packet.rfc5424 ?? Rfc5424.format(packet)}\n`

/** This process's tails, by hostname: the queues the feed delivers to, and their metrics. */
export const makeLocalTails = (bufferLines: number) =>
  Effect.gen(function*() {
    const open = new Map<string, Set<Queue.Queue<string>>>()
    const stats = { opened: 0, dropped: 0 }
    yield* Telemetry.gauge("logtail_tails_open", "Live tails open on this replica.", {}, () => {
      let n = 0
      for (const set of open.values()) n += set.size
      return n
    })
    yield* Telemetry.counter("logtail_tails_total", "Live tails opened on this replica.", {}, () => stats.opened)
    yield* Telemetry.counter("logtail_tail_dropped_total", "Lines a slow tail client missed.", {}, () => stats.dropped)
    return {
      open,
      /** Whether a tail of the hostname is open here. */
      has: (hostname: string) => open.has(hostname),
      /** How many tails of the hostname are open here. */
      count: (hostname: string) => open.get(hostname)?.size ?? 0,
      /** Hands lines to every tail of the hostname here. */
      deliver: (hostname: string, lines: ReadonlyArray<string>) => {
        const set = open.get(hostname)
        if (set === undefined) return
        for (const queue of set) {
          for (const line of lines) if (!Queue.offerUnsafe(queue, line)) stats.dropped++
        }
      },
      subscribe: (hostname: string) =>
        Effect.acquireRelease(
          Effect.gen(function*() {
            const queue = yield* Queue.dropping<string>(bufferLines)
            let set = open.get(hostname)
            if (set === undefined) open.set(hostname, set = new Set())
            set.add(queue)
            stats.opened++
            return queue
          }),
          (queue) =>
            Effect.sync(() => {
              const set = open.get(hostname)
              set?.delete(queue)
              if (set !== undefined && set.size === 0) open.delete(hostname)
            })
        )
    }
  })

export interface Options {
  /** Lines a tail holds for a slow client before it drops (10,000). */
  readonly bufferLines?: number | undefined
}

/** One process: packets go straight to the queues of its tails. */
export const memory = (options: Options = {}) =>
  Layer.effect(
    TailFeed,
    Effect.gen(function*() {
      const local = yield* makeLocalTails(options.bufferLines ?? 10_000)
      return TailFeed.of({
        publish: (packets) => {
          if (local.open.size === 0) return
          for (const packet of packets) {
            if (local.has(packet.hostname)) local.deliver(packet.hostname, [lineOf(packet)])
          }
        },
        subscribe: local.subscribe
      })
    })
  )
