/**
 * What an input queued, collected: a stand-in for the router in an input's tests. Each packet is
 * taken as routed to one drain that delivers it at once (its receipt, if any, is settled), and kept.
 */
import { Effect, Stream } from "effect"
import type { LogPacket } from "../../src/domain/LogPacket.ts"
import type { Ingest } from "../../src/layers/routing/Ingest.ts"

export const make = (ingest: Ingest["Service"]) => {
  const received: Array<LogPacket> = []
  /** Starts taking from Ingest (at once, or later to test an input held back). */
  const consume = ingest.packets.pipe(
    Stream.runForEachArray((chunk) =>
      Effect.sync(() => {
        for (const packet of chunk) {
          packet.receipt?.offered("memory://")
          packet.receipt?.routed(["memory://"])
          packet.receipt?.settle("memory://")
        }
        received.push(...chunk)
      })
    ),
    Effect.forkScoped,
    Effect.asVoid
  )
  /** The messages received from `hostname`, in order. */
  const messages = (hostname: string) => received.filter((p) => p.hostname === hostname).map((p) => p.message)
  return { received, consume, messages }
}
