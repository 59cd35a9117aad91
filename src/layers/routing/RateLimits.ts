/**
 * Per-app rate limits, applied by the router before routing: a token bucket per hostname that has
 * a limit (`logtrain.akkeris.io/rate-limit`, see domain/RateLimit.ts); what exceeds it is dropped.
 *
 * - Datasources set limits per source of theirs (a Kubernetes object), as they do routes: a source
 *   limits at most one hostname; a hostname limited by several sources gets the strictest.
 * - `admit` is the hot path: one map lookup per packet, none at all while no app has a limit.
 * - Counted: `logtrain_rate_limited_total{input}` (the input is `kubernetes` for container log
 *   files and `network` for the others: the router cannot tell syslog from HTTP, and per-hostname
 *   labels would make a series per app). Which apps are dropped is at `GET /debug/rate-limits`: a
 *   JSON list of every limited hostname with its limit, passed and dropped counts, most dropped
 *   first — bounded by the number of limits set, and costing nothing until someone asks.
 * - A warning per app at most every 10 s, with what it dropped since the last one.
 */
import { Context, Duration, Effect, Layer, Schedule, Scope } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as RateLimit from "../../domain/RateLimit.ts"
import * as Log from "../Log.ts"
import * as Telemetry from "../Telemetry.ts"

/** Where a dropped packet came from, as far as the router can tell. */
export type Input = "kubernetes" | "network"

export interface Offender {
  readonly hostname: string
  readonly limit: string
  readonly passed: number
  readonly dropped: number
  readonly lastDrop: string | undefined
}

const REPORT_INTERVAL_MS = 10_000
/** Apps named in warnings per interval; the rest are summed up in one more. */
const MAX_WARNINGS = 20
/** Sources whose invalid limit was warned about (bounded). */
const MAX_WARNED = 10_000

export class RateLimits extends Context.Service<RateLimits, {
  /** Whether any hostname has a limit (the router skips everything when none has). */
  readonly active: () => boolean
  /** Takes a token for a packet of `hostname` at `now` (ms): false if it is to be dropped (counted for `input`). */
  readonly admit: (hostname: string, now: number, input: Input) => boolean
  /**
   * What `source` limits now: `hostname` to `spec` (a rate-limit annotation; undefined or empty:
   * nothing). An invalid spec is refused with a warning (once per source and spec) and counted.
   */
  readonly set: (source: string, hostname: string, spec: string | undefined) => Effect.Effect<void>
  /** The limited hostnames, most dropped first. */
  readonly offenders: (max?: number) => ReadonlyArray<Offender>
}>()("logtrain/RateLimits") {
  static readonly layer = Layer.effect(
    RateLimits,
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const bySource = new Map<string, { readonly hostname: string; readonly limit: RateLimit.RateLimit }>()
      const sourcesOf = new Map<string, Set<string>>()
      const buckets = new Map<string, RateLimit.TokenBucket>()
      const dropped: Record<Input, number> = { kubernetes: 0, network: 0 }
      const rejected = new Map<string, number>()
      const warned = new Set<string>()

      for (const input of ["kubernetes", "network"] as const) {
        yield* Telemetry.counter(
          "logtrain_rate_limited_total",
          "Packets dropped because their app was over its rate limit (logtrain.akkeris.io/rate-limit).",
          { input, reason: "rate_limit" },
          () => dropped[input]
        )
      }
      yield* Telemetry.gauge("logtrain_rate_limits", "Hostnames with a rate limit.", {}, () => buckets.size)

      /** The effective limit of `hostname` after its sources changed. */
      const refresh = (hostname: string, now: number) => {
        const sources = sourcesOf.get(hostname)
        let limit: RateLimit.RateLimit | undefined
        for (const source of sources ?? []) {
          const held = bySource.get(source)!.limit
          limit = limit === undefined ? held : RateLimit.stricter(limit, held)
        }
        const bucket = buckets.get(hostname)
        if (limit === undefined) buckets.delete(hostname)
        else if (bucket === undefined) buckets.set(hostname, new RateLimit.TokenBucket(hostname, limit, now))
        else if (!RateLimit.same(bucket.limit, limit)) bucket.change(limit)
      }

      const unset = (source: string, now: number) => {
        const held = bySource.get(source)
        if (held === undefined) return
        bySource.delete(source)
        const sources = sourcesOf.get(held.hostname)!
        sources.delete(source)
        if (sources.size === 0) sourcesOf.delete(held.hostname)
        refresh(held.hostname, now)
      }

      const reject = (source: string, spec: string, error: RateLimit.RateLimitError) =>
        Effect.gen(function*() {
          const datasource = source.split(":")[0]!
          const count = rejected.get(datasource)
          rejected.set(datasource, (count ?? 0) + 1)
          if (count === undefined) {
            yield* Telemetry.counter(
              "logtrain_rate_limits_rejected_total",
              "Rate limits refused because they could not be read.",
              { source: datasource },
              () => rejected.get(datasource) ?? 0
            ).pipe(Scope.provide(scope))
          }
          const key = `${source}\u0000${spec}`
          if (warned.has(key)) return
          if (warned.size >= MAX_WARNED) warned.clear()
          warned.add(key)
          yield* Log.warn("rate limit ignored", { source, error: error.message })
        })

      const set = (source: string, hostname: string, spec: string | undefined) =>
        Effect.suspend(() => {
          const now = Date.now()
          const text = spec?.trim() ?? ""
          if (text.length === 0) {
            unset(source, now)
            return Effect.void
          }
          const limit = RateLimit.parse(text)
          if (RateLimit.isError(limit)) {
            unset(source, now)
            return reject(source, text, limit)
          }
          const held = bySource.get(source)
          if (held !== undefined && held.hostname === hostname && RateLimit.same(held.limit, limit)) return Effect.void
          unset(source, now)
          bySource.set(source, { hostname, limit })
          let sources = sourcesOf.get(hostname)
          if (sources === undefined) {
            sources = new Set()
            sourcesOf.set(hostname, sources)
          }
          sources.add(source)
          refresh(hostname, now)
          return Effect.void
        })

      const admit = (hostname: string, now: number, input: Input): boolean => {
        const bucket = buckets.get(hostname)
        if (bucket === undefined || bucket.take(now)) return true
        dropped[input]++
        return false
      }

      const offenders = (max = 100): ReadonlyArray<Offender> =>
        [...buckets].toSorted(([, a], [, b]) => b.dropped - a.dropped || b.passed - a.passed).slice(0, max).map(([hostname, bucket]) => ({
          hostname,
          limit: RateLimit.format(bucket.limit),
          passed: bucket.passed,
          dropped: bucket.dropped,
          lastDrop: bucket.lastDrop === 0 ? undefined : new Date(bucket.lastDrop).toISOString()
        }))

      // A warning when an app starts dropping (looked at every second), then at most one every
      // 10 s per app, with what it dropped since the last one.
      const reported = new Map<RateLimit.TokenBucket, { dropped: number; at: number }>()
      yield* Effect.suspend(() => {
        const now = Date.now()
        const over: Array<{ hostname: string; limit: string; dropped: number }> = []
        for (const [hostname, bucket] of buckets) {
          const last = reported.get(bucket) ?? { dropped: 0, at: 0 }
          const delta = bucket.dropped - last.dropped
          if (delta === 0 || now - last.at < REPORT_INTERVAL_MS) continue
          over.push({ hostname, limit: RateLimit.format(bucket.limit), dropped: delta })
          reported.set(bucket, { dropped: bucket.dropped, at: now })
        }
        for (const bucket of reported.keys()) if (buckets.get(bucket.hostname) !== bucket) reported.delete(bucket)
        if (over.length === 0) return Effect.void
        over.sort((a, b) => b.dropped - a.dropped)
        return Effect.andThen(
          Effect.forEach(over.slice(0, MAX_WARNINGS), (app) =>
            Log.warn("app over its rate limit: lines dropped", {
              hostname: app.hostname,
              limit: app.limit,
              dropped: app.dropped
            }), { discard: true }),
          over.length > MAX_WARNINGS
            ? Log.warn("more apps over their rate limits (see /debug/rate-limits)", { apps: over.length - MAX_WARNINGS })
            : Effect.void
        )
      }).pipe(Effect.repeat(Schedule.spaced(Duration.seconds(1))), Effect.forkScoped)

      return RateLimits.of({ active: () => buckets.size > 0, admit, set, offenders })
    })
  )
}

/** `GET /debug/rate-limits`: the limited hostnames, most dropped first (`?max=N`, default 100). */
export const routes = HttpRouter.add(
  "GET",
  "/debug/rate-limits",
  Effect.gen(function*() {
    const limits = yield* RateLimits
    const request = yield* HttpServerRequest.HttpServerRequest
    const max = Number(new URL(request.url, "http://x").searchParams.get("max") ?? 100)
    return HttpServerResponse.jsonUnsafe({ apps: limits.offenders(Number.isInteger(max) && max > 0 ? max : 100) })
  })
)
