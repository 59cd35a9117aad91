/** Garbage collection while a benchmark runs: time spent and full collections, from Node's `gc` performance entries. */
import { constants, PerformanceObserver } from "node:perf_hooks"

export interface GcTotals {
  readonly gcMs: number
  readonly fullGcs: number
}

/** Starts counting; `stop` waits for the last entries to be delivered and returns the totals. */
export const observeGc = () => {
  let gcMs = 0
  let fullGcs = 0
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcMs += entry.duration
      if ((entry as unknown as { detail: { kind: number } }).detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullGcs++
    }
  })
  observer.observe({ entryTypes: ["gc"] })
  return {
    stop: async (): Promise<GcTotals> => {
      await new Promise((resolve) => setTimeout(resolve, 50))
      observer.disconnect()
      return { gcMs: Math.round(gcMs), fullGcs }
    }
  }
}
