/**
 * Gives memory back to the system once a burst is over.
 *
 * After a flood (thousands of connections, each holding part of a frame, then closed), what they
 * held is garbage, but an idle Node process never collects it: V8 collects when it allocates, and
 * its own idle "memory reducer" never finds the allocation rate low enough in Node 24 (with
 * --trace-memory-reducer it says "high alloc" every 8 s, even in an empty script). And even a
 * full collection keeps the freed pages in V8's page pool: only a memory-reducing collection
 * returns them. Measured with bench/hostile-connections.ts (5,000 connections × 65 KB held, then
 * closed, no limits): 800 MB resident a minute later; after a regular full GC still 839 MB (377 MB
 * of them pooled pages); after a memory-reducing one the V8 heap was back to 16 MB (what stays is
 * glibc's: see the README, Memory after a burst).
 *
 * So every few seconds this looks at the process: when it is quiet (little CPU used since the
 * last look) and its resident memory is well above where it settled (its lowest since the last
 * reclaim, or since start), it runs one memory-reducing collection (`gc` with the "last-resort"
 * flavor, which also releases pooled pages). 8 MB above: with 24, a flood at the default limits
 * was left 23 MB up; with 16, the reference workload (npm run bench -- --only reference, 120 s)
 * climbed ~10 MB in its first 30 s and stayed there, 93.9-94.5 MB on average, against 88.5-91.0
 * with 8 (about one reclaim a 30 s, each a pause of ~0.1-0.25 s on a loaded machine: its p99 from
 * written to delivered 50 ms in one run, 1.1 s at load 6 in the other). A busy process is left alone — V8 collects as it allocates — and a quiet one
 * whose memory has not grown is never collected again. Each reclaim is counted
 * (`logtrain_memory_reclaims_total`) and logged at debug level with what it gave back.
 */
import { Duration, Effect, Layer, Schedule } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as Log from "./Log.ts"
import * as Telemetry from "./Telemetry.ts"

export interface Options {
  /** How often to look. */
  readonly interval: Duration.Duration
  /** Quiet: at most this share of one core used since the last look. */
  readonly quietCpu: number
  /** Reclaim when resident memory is this much above where it settled last. */
  readonly growthBytes: number
  /** At most one reclaim per this long. */
  readonly minInterval: Duration.Duration
}

export const defaults: Options = {
  interval: Duration.seconds(2),
  quietCpu: 0.1,
  growthBytes: 8 * 1024 * 1024,
  minInterval: Duration.seconds(30)
}

type Collect = (options: { readonly type: "major"; readonly execution: "sync"; readonly flavor: "last-resort" }) => void

/**
 * V8's `gc` function, without starting Node with --expose-gc: the flag, set now, exposes `gc` in
 * contexts made from then on (Node documents `v8.setFlagsFromString` for such late changes); one
 * new context hands it over, and the flag is turned off again.
 */
const collector = (): Collect | undefined => {
  try {
    setFlagsFromString("--expose-gc")
    const gc = runInNewContext("gc") as unknown
    setFlagsFromString("--no-expose-gc")
    return typeof gc === "function" ? gc as Collect : undefined
  } catch {
    return undefined
  }
}

export const layer = (options: Options = defaults): Layer.Layer<never> =>
  Layer.effectDiscard(Effect.gen(function*() {
    let reclaims = 0
    yield* Telemetry.counter(
      "logtrain_memory_reclaims_total",
      "Memory-reducing garbage collections run because the process was quiet and had grown.",
      {},
      () => reclaims
    )
    let gc: Collect | undefined
    // Where memory settles is first measured at the first look, once start-up is done.
    let settled = Number.POSITIVE_INFINITY
    let lastReclaim = 0
    let lastCpu = process.cpuUsage()
    let lastLook = Date.now()
    const intervalMs = Duration.toMillis(options.interval)
    const minIntervalMs = Duration.toMillis(options.minInterval)

    const look = Effect.suspend(() => {
      const now = Date.now()
      const cpu = process.cpuUsage(lastCpu)
      const busy = (cpu.user + cpu.system) / 1000 / Math.max(1, now - lastLook)
      lastCpu = process.cpuUsage()
      lastLook = now
      const rss = process.memoryUsage.rss()
      // Settle on the lowest level seen while nothing is reclaimed, so that growth is measured
      // from where the process was at rest.
      if (rss < settled) settled = rss
      if (busy > options.quietCpu || rss - settled < options.growthBytes || now - lastReclaim < minIntervalMs) {
        return Effect.void
      }
      gc ??= collector()
      if (gc === undefined) return Effect.void
      const started = Date.now()
      gc({ type: "major", execution: "sync", flavor: "last-resort" })
      reclaims++
      lastReclaim = Date.now()
      // What the collection freed is unmapped as it is swept: measure a moment later.
      return Effect.sleep(Duration.seconds(1)).pipe(
        Effect.andThen(Effect.suspend(() => {
          const after = process.memoryUsage.rss()
          settled = after
          lastCpu = process.cpuUsage()
          lastLook = Date.now()
          return Log.debug("memory reclaimed", {
            beforeMb: Math.round(rss / 1048576),
            afterMb: Math.round(after / 1048576),
            pauseMs: lastReclaim - started
          })
        }))
      )
    })
    yield* look.pipe(Effect.repeat(Schedule.spaced(Duration.millis(intervalMs))), Effect.forkScoped)
  }))
