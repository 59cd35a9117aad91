/**
 * How long a drain waits before it sends a failed batch again: exponential from `retryBaseDelay`,
 * ±20 %, capped at `retryMaxDelay`, at least what the receiver asked for (Retry-After). While the
 * receiver cannot be reached, a connect probe every PROBE_INTERVAL ends the wait as soon as it
 * can: a receiver that comes back is noticed within about a second, whatever the wait has grown to.
 */
import { Duration, Effect } from "effect"
import type { DrainError } from "./DrainError.ts"
import type { DrainSettings } from "./DrainSink.ts"

/** How often a receiver that cannot be reached is probed while a send waits to be retried. */
export const PROBE_INTERVAL = Duration.seconds(1)

/** Probes the receiver every PROBE_INTERVAL; ends once it answers. */
const untilReachable = (probe: Effect.Effect<boolean>) =>
  Effect.suspend(function loop(): Effect.Effect<void> {
    return Effect.flatMap(Effect.andThen(Effect.sleep(PROBE_INTERVAL), probe), (up) => (up ? Effect.void : loop()))
  })

/** The wait before retry number `attempt` (from 0): exponential, ±20 %, capped at retryMaxDelay; at least what the receiver asked for. */
export const delay = (settings: Pick<DrainSettings, "retryBaseDelay" | "retryMaxDelay">, attempt: number, error: DrainError): Duration.Duration => {
  const base = Duration.toMillis(settings.retryBaseDelay) * 2 ** Math.min(attempt, 30)
  const jittered = Math.min(base * (0.8 + Math.random() * 0.4), Duration.toMillis(settings.retryMaxDelay))
  const asked = error.retryAfter === undefined ? 0 : Duration.toMillis(error.retryAfter)
  return Duration.millis(Math.max(jittered, asked))
}

/** The waits of one drain: before retry number `attempt` after `error`, cut short by `probe` when it could not connect. */
export const waits = (settings: Pick<DrainSettings, "retryBaseDelay" | "retryMaxDelay">, probe: Effect.Effect<boolean> | undefined) =>
  (attempt: number, error: DrainError): Effect.Effect<void> => {
    const wait = delay(settings, attempt, error)
    return probe !== undefined && error.reason === "Connect" && Duration.isGreaterThan(wait, PROBE_INTERVAL)
      ? Effect.raceFirst(Effect.sleep(wait), untilReachable(probe))
      : Effect.sleep(wait)
  }
