/**
 * What every drain counts, the same for every kind (vector's component spec): received, sent,
 * dropped by reason, refused by the receiver's reason, errors, retries, resent, buffer depth,
 * workers, up. Counted in plain numbers on the hot path and read by /metrics at scrape time; drops
 * are also summed up in one warning per interval, so a drain dropping a flood writes one line, not
 * a flood.
 */
import { Duration, Effect, Schedule, Scope } from "effect"
import * as Log from "../Log.ts"
import * as Telemetry from "../Telemetry.ts"

/** Why packets are dropped; each has a series from the start, so dashboards see zeros, not gaps. */
export const dropReasons = ["buffer_full", "memory", "rejected", "unsupported", "shutdown", "backlog_limit"] as const
export type DropReason = typeof dropReasons[number]

export interface DrainStats {
  received: number
  /** Delivered: confirmed by the receiver, as far as its protocol can tell. */
  sent: number
  /** Failed send attempts. */
  errors: number
  /** Send attempts that were retries of a failed batch. */
  retries: number
  /** Packets written again after the connection they were on failed before they were confirmed. */
  resent: number
  /** Packets buffered, in flight included. */
  depth: number
  /** Their approximate bytes (what the drain holds of the memory budget). */
  bytes: number
  lanes: number
  healthy: boolean
  readonly dropped: Record<DropReason, number>
}

/** Refusal reasons get their own series up to this many per drain (a flood of distinct reasons stays counted in the total). */
const MAX_REJECTION_REASONS = 32

/** How often drops are logged (they are counted at once). */
const DROP_REPORT_INTERVAL = Duration.seconds(10)

export interface Counted {
  readonly stats: DrainStats
  /** Counts packets the receiver refused for good, by its reason, with its words about one of them. */
  readonly rejected: (reason: string, n: number, example: string | undefined) => Effect.Effect<void>
}

/**
 * The stats of one drain, registered as metrics for the scope's life, and a fiber that reports
 * drops every DROP_REPORT_INTERVAL.
 */
export const make = (display: string, kind: string): Effect.Effect<Counted, never, Scope.Scope> =>
  Effect.gen(function*() {
    const stats: DrainStats = {
      received: 0,
      sent: 0,
      errors: 0,
      retries: 0,
      resent: 0,
      depth: 0,
      bytes: 0,
      lanes: 1,
      healthy: true,
      dropped: { buffer_full: 0, memory: 0, rejected: 0, unsupported: 0, shutdown: 0, backlog_limit: 0 }
    }
    const labels = { drain: display, kind }
    const scope = yield* Effect.scope
    yield* Effect.all([
      Telemetry.counter("logtrain_drain_received_total", "Packets routed to the drain.", labels, () => stats.received),
      Telemetry.counter("logtrain_drain_sent_total", "Packets the drain delivered (confirmed, as far as its protocol can tell).", labels, () =>
        stats.sent),
      Telemetry.counter("logtrain_drain_errors_total", "Failed send attempts.", labels, () => stats.errors),
      Telemetry.counter("logtrain_drain_retries_total", "Send attempts that retried a failed batch.", labels, () =>
        stats.retries),
      Telemetry.counter(
        "logtrain_drain_resent_total",
        "Packets written again because the connection they were written on failed before they were confirmed (the receiver may have them twice).",
        labels,
        () => stats.resent
      ),
      Telemetry.gauge("logtrain_drain_buffer_depth", "Packets buffered, in flight included.", labels, () =>
        stats.depth),
      Telemetry.gauge(
        "logtrain_drain_buffer_bytes",
        "Approximate bytes of the packets buffered, in flight included (counted against MEMORY_LIMIT).",
        labels,
        () => stats.bytes
      ),
      Telemetry.gauge("logtrain_drain_workers", "Lanes (workers, connections) in use.", labels, () => stats.lanes),
      Telemetry.gauge("logtrain_drain_up", "1 while the last send succeeded, 0 while failing.", labels, () =>
        stats.healthy ? 1 : 0),
      ...dropReasons.map((reason) =>
        Telemetry.counter("logtrain_drain_dropped_total", "Packets the drain gave up on, by reason.", {
          ...labels,
          reason
        }, () => stats.dropped[reason])
      )
    ], { discard: true })

    /** Items refused for good, by the receiver's reason; a series appears with its first reason. */
    const rejectedBy = new Map<string, number>()
    /** The receiver's words about the latest refusal, for the periodic log line. */
    let lastRefusal: string | undefined
    const rejected = (reason: string, n: number, example: string | undefined) =>
      Effect.suspend(() => {
        stats.dropped.rejected += n
        if (example !== undefined) lastRefusal = example
        const before = rejectedBy.get(reason)
        rejectedBy.set(reason, (before ?? 0) + n)
        if (before !== undefined || rejectedBy.size > MAX_REJECTION_REASONS) return Effect.void
        return Telemetry.counter(
          "logtrain_drain_rejected_total",
          "Packets the receiver refused for good, by its reason.",
          { ...labels, reason },
          () => rejectedBy.get(reason) ?? 0
        ).pipe(Scope.provide(scope))
      })

    // Drops happen where nothing may log (offer, on the router's hot path) and per batch; summed
    // up from here, at most once per interval.
    const reported: Record<DropReason, number> = { ...stats.dropped }
    yield* Effect.suspend(() => {
      const dropped: Partial<Record<DropReason, number>> = {}
      let any = false
      for (const reason of dropReasons) {
        const n = stats.dropped[reason] - reported[reason]
        if (n > 0) {
          dropped[reason] = n
          any = true
        }
        reported[reason] = stats.dropped[reason]
      }
      if (!any) return Effect.void
      const example = dropped.rejected !== undefined ? lastRefusal : undefined
      return Log.warn("drain dropped packets", { drain: display, ...dropped, ...(example === undefined ? {} : { refused: example }) })
    }).pipe(Effect.repeat(Schedule.spaced(DROP_REPORT_INTERVAL)), Effect.forkScoped)

    return { stats, rejected }
  })
