/**
 * Delivery receipts: how a source that keeps its own data — a container log file, where the file
 * is the buffer — learns what became of each of its packets. With them it moves its checkpoint
 * only past what every drain is done with, and keeps on disk, not in memory, what a full drain
 * cannot take yet.
 *
 * A packet with a receipt goes through the router like any other, and:
 * - the router asks `wants(endpoint, packet)` before offering it to a drain: false for a drain
 *   that reads this source's backlog by itself (see `park`), or already has the packet;
 * - the router calls `offered(endpoint)` for each drain it hands the packet to, then
 *   `routed(endpoints)` once it is done with the packet, with the endpoints its hostname is routed
 *   to (none: a dead packet, counted as such);
 * - each drain the packet was offered to calls `settle(endpoint)` once, when the packet was
 *   delivered or dropped for a counted reason (refused for good by the receiver) — or, for
 *   `packets` of them with the same receipt at once, `settle(endpoint, packets)`. A packet a drain
 *   holds when logtrain stops is never settled: the source reads it again after the restart, for
 *   that drain;
 * - when a drain is full, the router calls `park(endpoint, packet, feed)` instead of offering:
 *   from this packet on, that drain gets this source's packets through `feed`, read again by the
 *   source when the drain has room, until it has caught up.
 *
 * Inputs never know drains: all a source sees of one is its endpoint (a name) and a Feed.
 */
import type { Effect } from "effect"
import type { LogPacket } from "./LogPacket.ts"

export interface Receipt {
  readonly wants: (endpoint: string, packet: LogPacket) => boolean
  readonly offered: (endpoint: string) => void
  readonly routed: (endpoints: ReadonlyArray<string> | undefined) => void
  readonly settle: (endpoint: string, packets?: number) => void
  readonly park: (endpoint: string, packet: LogPacket, feed: Feed) => void
}

/** What offering a packet straight to a drain came to. */
export type Offered = "taken" | "full" | "gone"

/** A full drain, as the source that feeds it its backlog sees it. */
export interface Feed {
  /**
   * Waits until the drain has room for a good share of its buffer; false when it never will (it
   * is closing, or no longer routed this source's packets).
   */
  readonly whenRoom: Effect.Effect<boolean>
  /** Offers one packet; `gone` when the drain is closing or no longer routed this source's packets. */
  readonly offer: (packet: LogPacket) => Offered
  /** Counts packets the source gave up on for this drain (see the reasons of DrainRunner). */
  readonly dropped: (packets: number, reason: "backlog_limit") => void
}
