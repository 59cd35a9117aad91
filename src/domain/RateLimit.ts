/**
 * Per-app rate limits: the `logtrain.akkeris.io/rate-limit` syntax (`500/s`, `500/s,burst=2000`,
 * also per minute: `6000/m`) and the token bucket that enforces one.
 *
 * A bucket holds up to `burst` tokens (default: one second's worth, at least 1) and gains `rate`
 * per second; each packet takes one, and a packet that finds none is dropped. The bucket is
 * refilled from the time passed since it was last asked, so it costs nothing while the app is
 * quiet and two numbers per app while it logs.
 */
import { Data } from "effect"

export interface RateLimit {
  /** Packets per second, sustained. */
  readonly perSecond: number
  /** Packets that may pass at once after a quiet spell. */
  readonly burst: number
}

export class RateLimitError extends Data.TaggedError("RateLimitError")<{ readonly detail: string }> {
  override get message(): string {
    return this.detail
  }
}

/** Longest spec read (anything longer is refused, not parsed). */
const MAX_SPEC = 64

const UNITS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60 }

/** `<n>/<s|m>[,burst=<n>]`, spaces allowed around the parts. */
export const parse = (spec: string): RateLimit | RateLimitError => {
  if (spec.length > MAX_SPEC) return new RateLimitError({ detail: `rate limit longer than ${MAX_SPEC} characters` })
  const [rate, ...options] = spec.split(",").map((part) => part.trim())
  const match = /^(\d+(?:\.\d+)?)\s*\/\s*([a-z]+)$/.exec(rate ?? "")
  const unit = match === null ? undefined : UNITS[match[2]!]
  if (match === null || unit === undefined) {
    return new RateLimitError({ detail: `rate limit ${JSON.stringify(spec)}: expected <number>/s or <number>/m, e.g. 500/s or 500/s,burst=2000` })
  }
  const perSecond = Number(match[1]) / unit
  if (!(perSecond > 0) || !Number.isFinite(perSecond)) return new RateLimitError({ detail: `rate limit ${JSON.stringify(spec)}: the rate must be above 0` })
  let burst = Math.max(1, Math.ceil(perSecond))
  for (const option of options) {
    const kv = /^burst\s*=\s*(\d+)$/.exec(option)
    if (kv === null) return new RateLimitError({ detail: `rate limit ${JSON.stringify(spec)}: unknown option ${JSON.stringify(option)} (only burst=<n>)` })
    burst = Number(kv[1])
    if (burst < 1) return new RateLimitError({ detail: `rate limit ${JSON.stringify(spec)}: burst must be at least 1` })
  }
  return { perSecond, burst }
}

export const isError = (value: RateLimit | RateLimitError): value is RateLimitError => value instanceof RateLimitError

/** How a limit is written back (for the debug endpoint and logs). */
export const format = (limit: RateLimit): string => `${limit.perSecond}/s,burst=${limit.burst}`

/** The stricter of two limits (a hostname limited by two sources gets the lower rate). */
export const stricter = (a: RateLimit, b: RateLimit): RateLimit =>
  a.perSecond < b.perSecond || (a.perSecond === b.perSecond && a.burst <= b.burst) ? a : b

export const same = (a: RateLimit, b: RateLimit): boolean => a.perSecond === b.perSecond && a.burst === b.burst

/** One app's bucket, with what it let through and dropped. */
export class TokenBucket {
  readonly hostname: string
  limit: RateLimit
  tokens: number
  /** When the tokens were last counted (ms). */
  at: number
  passed = 0
  dropped = 0
  /** When it last dropped a packet (ms), for the top offenders. */
  lastDrop = 0
  constructor(hostname: string, limit: RateLimit, now: number) {
    this.hostname = hostname
    this.limit = limit
    this.tokens = limit.burst
    this.at = now
  }

  /** Takes a token at time `now` (ms): true if the packet may pass. */
  take(now: number): boolean {
    if (now > this.at) {
      this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.at) * this.limit.perSecond) / 1000)
      this.at = now
    }
    if (this.tokens >= 1) {
      this.tokens -= 1
      this.passed++
      return true
    }
    this.dropped++
    this.lastDrop = now
    return false
  }

  /** A new limit: the tokens held are kept, up to the new burst. */
  change(limit: RateLimit): void {
    this.limit = limit
    this.tokens = Math.min(this.tokens, limit.burst)
  }
}
