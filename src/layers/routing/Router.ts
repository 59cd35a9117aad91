/**
 * The router: takes packets from Ingest in chunks and hands each one to the drains its hostname is
 * routed to. Packets whose hostname has no route are counted as dead packets.
 *
 * The loop over a chunk is plain synchronous code — a map lookup and a buffer push per packet —
 * because an Effect per packet would cost more than the routing. It leaves Effect only to open a
 * drain the first time an endpoint gets a packet, and, with DRAIN_WHEN_FULL=block, to wait for a
 * full drain: it stops at that packet, waits until the drain has room, and goes on from exactly
 * there, so each drain still gets its packets in order and none twice. (With the default, drop,
 * a full drain drops the packet and counts it, and nothing waits.) Between chunks it yields, so
 * drain workers and socket callbacks get their turn on the one thread.
 *
 * Before routing, a packet whose app is over its rate limit is dropped and counted (RateLimits).
 *
 * On shutdown (after the inputs have stopped) it routes what is still queued before it ends, so
 * the drains, closed after it, flush everything that was received.
 */
import { Effect, Fiber, Layer, Stream } from "effect"
import type { LogPacket } from "../../domain/LogPacket.ts"
import type { DrainHandle } from "../drains/DrainSink.ts"
import { Drains } from "./Drains.ts"
import { Ingest } from "./Ingest.ts"
import { RateLimits } from "./RateLimits.ts"
import { RouteTable } from "./RouteTable.ts"
import * as Telemetry from "../Telemetry.ts"

export interface Options {
  /** What to do when a drain's buffer is full: drop the packet (default) or wait for room. */
  readonly whenFull: "drop" | "block"
}

/**
 * Where routing a chunk stopped, and why. `endpoints` is the stopped packet's endpoint list as it
 * was then: routing that packet resumes in the same list, even if routes changed meanwhile;
 * `offered` counts the drains it was already offered to.
 */
type Stop =
  | { readonly _tag: "Done" }
  | {
    readonly _tag: "Unopened"
    readonly index: number
    readonly endpoints: ReadonlyArray<string>
    readonly endpoint: number
    readonly offered: number
    readonly url: string
  }
  | {
    readonly _tag: "Full"
    readonly index: number
    readonly endpoints: ReadonlyArray<string>
    readonly endpoint: number
    readonly offered: number
    readonly drain: DrainHandle
  }

const DONE: Stop = { _tag: "Done" }

interface Resume {
  readonly endpoints: ReadonlyArray<string>
  readonly endpoint: number
  readonly offered: number
}

export const layer = (options: Options = { whenFull: "drop" }) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const ingest = yield* Ingest
    const table = yield* RouteTable
    const drains = yield* Drains
    const limits = yield* RateLimits
    const block = options.whenFull === "block"
    const stats = { routed: 0, dead: 0, waits: 0, parked: 0 }
    yield* Telemetry.counter("logtrain_dead_packets_total", "Packets received for a hostname with no route.", {}, () =>
      stats.dead)
    yield* Telemetry.counter("logtrain_routed_packets_total", "Packets handed to a drain (once per drain).", {}, () =>
      stats.routed)
    yield* Telemetry.counter("logtrain_router_waits_total", "Times the router waited for a full or busy drain (DRAIN_WHEN_FULL=block).", {}, () =>
      stats.waits)
    yield* Telemetry.counter(
      "logtrain_router_parked_total",
      "Times a full drain left a file's packets on disk, to be read again when it has room.",
      {},
      () => stats.parked
    )

    /** Whether `hostname` is still routed to `endpoint` (for a drain fed a file's backlog). */
    const stillRouted = (hostname: string, endpoint: string) => () => table.lookup(hostname)?.includes(endpoint) === true

    /**
     * Routes `chunk` from packet `index` on — that packet from endpoint `endpoint` of `resume` —
     * and stops at the first endpoint whose drain is not open yet, or (blocking) is full. A
     * packet with a receipt (a file's) is never dropped nor waited for: a full drain is parked
     * on its source, which feeds it again from disk (Receipt.ts).
     */
    const route = (chunk: ReadonlyArray<LogPacket>, index: number, resume?: Resume): Stop => {
      // Rate limits: a clock read per chunk, a map lookup per packet, nothing while none is set.
      const limited = limits.active()
      const now = limited ? Date.now() : 0
      // The last hostname's endpoints and the last endpoint's drain: a chunk mostly holds runs of
      // one source (a socket read's), so two map lookups a packet become two string compares
      // (the same string, mostly). Nothing changes the route table or the drains while a chunk is
      // routed (synchronously).
      let lastHostname: string | undefined = undefined
      let lastEndpoints: ReadonlyArray<string> | undefined = undefined
      let lastUrl: string | undefined = undefined
      let lastDrain: DrainHandle | undefined = undefined
      for (let i = index; i < chunk.length; i++) {
        const packet = chunk[i]!
        const resumed = i === index && resume !== undefined
        const receipt = packet.receipt
        if (limited && !resumed && !limits.admit(packet.hostname, now, receipt === undefined ? "network" : "kubernetes")) {
          // Dropped for a counted reason: a file moves its checkpoint past it.
          receipt?.routed([])
          continue
        }
        let endpoints = lastEndpoints
        if (resumed) {
          endpoints = resume.endpoints
        } else if (packet.hostname !== lastHostname) {
          lastHostname = packet.hostname
          endpoints = lastEndpoints = table.lookup(lastHostname)
        }
        if (endpoints === undefined) {
          stats.dead++
          receipt?.routed(undefined)
          continue
        }
        let offered = resumed ? resume.offered : 0
        for (let j = resumed ? resume.endpoint : 0; j < endpoints.length; j++) {
          const url = endpoints[j]!
          if (receipt !== undefined && !receipt.wants(url, packet)) continue
          if (url !== lastUrl) {
            lastUrl = url
            lastDrain = drains.get(url)
          }
          const drain = lastDrain
          if (drain === undefined) return { _tag: "Unopened", index: i, endpoints, endpoint: j, offered, url }
          // With DRAIN_WHEN_FULL=block, a packet waits for a drain that is only busy (sending, its
          // buffer half full because everything is read faster than it sends): a file's, parked
          // there, would leave the file's packets already read after it read for nothing, and read
          // again for the drain from disk; a network packet need not fill the buffer to the brim
          // to slow its sender. On a full drain that is failing or closing, a file's is parked.
          if (block && drain.busy(packet)) return { _tag: "Full", index: i, endpoints, endpoint: j, offered, drain }
          if (!drain.hasRoom(packet)) {
            if (receipt !== undefined) {
              stats.parked++
              receipt.park(url, packet, drain.feed(stillRouted(packet.hostname, url)))
              continue
            }
            if (block) return { _tag: "Full", index: i, endpoints, endpoint: j, offered, drain }
          }
          if (drain.offer(packet)) {
            offered++
            receipt?.offered(url)
          }
          stats.routed++
        }
        receipt?.routed(endpoints)
      }
      return DONE
    }

    /** Routes what `route` could not, waiting for a drain to open or (blocking) to have room. */
    const routeRest = Effect.fnUntraced(function*(chunk: ReadonlyArray<LogPacket>, first: Stop) {
      let stop = first
      while (stop._tag !== "Done") {
        if (stop._tag === "Unopened") {
          yield* drains.open(stop.url)
        } else {
          stats.waits++
          // A packet waits while the drain is busy, then is routed again (a file's is parked if
          // the drain has started failing or closing meanwhile: never dropped). A file's packet
          // stops only at a busy drain; a network packet also at a full one (failing, or its
          // memory share full), which it waits for below.
          const packet = chunk[stop.index]!
          if (packet.receipt !== undefined || stop.drain.busy(packet)) {
            yield* stop.drain.untilNotBusy(packet)
            stop = route(chunk, stop.index, stop)
            continue
          }
          // A closing drain never has room: let offer count the packet as dropped, and go on.
          if (!(yield* stop.drain.whenRoom(chunk[stop.index]!))) {
            stop.drain.offer(chunk[stop.index]!)
            stop = route(chunk, stop.index, { endpoints: stop.endpoints, endpoint: stop.endpoint + 1, offered: stop.offered })
            continue
          }
        }
        stop = route(chunk, stop.index, stop)
      }
    })

    // Usually a chunk is routed synchronously. The Effect for the rest is made only when needed,
    // and from one generator function made once: a generator from a function made afresh for each
    // chunk kept the whole chunk alive until the next full GC (V8), which made every packet
    // survive into the old generation (measured: ~4x the garbage collection, 0.7x the lines/s).
    const routeChunk = (chunk: ReadonlyArray<LogPacket>): Effect.Effect<void> => {
      const stop = route(chunk, 0)
      return stop._tag === "Done" ? Effect.void : routeRest(chunk, stop)
    }

    const fiber = yield* ingest.packets.pipe(
      Stream.runForEachArray((chunk) => Effect.andThen(routeChunk(chunk), Effect.yieldNow)),
      Effect.forkScoped
    )

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* ingest.end
        yield* Fiber.await(fiber)
      })
    )
  }))
