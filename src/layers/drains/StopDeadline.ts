/** The drains' shared stop deadline (DRAIN_FLUSH_TIMEOUT from when the process began to stop). */
import { Clock, Context, Effect } from "effect"

/**
 * When the process began to stop, if it has: every drain flushes within the same deadline, measured
 * from then, however late its own close comes (inputs and the router stop first).
 */
export class StopDeadline extends Context.Service<StopDeadline, {
  /** Marks the start of the stop (the first call counts). */
  readonly begin: Effect.Effect<void>
  /** When the stop began, in epoch milliseconds, if it has. */
  readonly startedAt: () => number | undefined
}>()("logtrain/drains/StopDeadline") {
  static readonly make = Effect.sync(() => {
    let startedAt: number | undefined
    return StopDeadline.of({
      begin: Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          startedAt ??= now
        })),
      startedAt: () => startedAt
    })
  })
}
