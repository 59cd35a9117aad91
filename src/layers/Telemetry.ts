/**
 * Metrics read at scrape time. Components count in plain numbers on their hot paths (an Effect per
 * line would cost more than the line) and register series that read those numbers when /metrics
 * is scraped. A series lives as long as the scope that registered it.
 */
import { Effect, Layer, Metric, Scope } from "effect"

export type Attributes = Readonly<Record<string, string>>

const noop = () => {}

/** A counter series whose value is `read()`; `read` must only ever grow. */
export const counter = (
  name: string,
  description: string,
  attributes: Attributes,
  read: () => number
): Effect.Effect<void, never, Scope.Scope> =>
  register(Metric.counter(name, { description, incremental: true }), attributes, () => ({
    count: read(),
    incremental: true
  }))

/** A gauge series whose value is `read()`. */
export const gauge = (
  name: string,
  description: string,
  attributes: Attributes,
  read: () => number
): Effect.Effect<void, never, Scope.Scope> =>
  register(Metric.gauge(name, { description }), attributes, () => ({ value: read() }))

const register = <State>(
  metric: Metric.Metric<number, State>,
  attributes: Attributes,
  get: () => State
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.contextWith((context) => {
    const registration = Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
      get,
      update: noop,
      modify: noop
    })
    return Effect.addFinalizer(() => Effect.sync(registration.remove))
  })

/**
 * The process's memory, under the names Prometheus client libraries use, so dashboards made for
 * other Node services work: resident set, and the V8 heap in use and reserved.
 */
export const processMetrics: Layer.Layer<never> = Layer.effectDiscard(Effect.gen(function*() {
  yield* gauge("process_resident_memory_bytes", "Resident memory size in bytes.", {}, () => process.memoryUsage.rss())
  yield* gauge("nodejs_heap_size_used_bytes", "V8 heap in use, in bytes.", {}, () => process.memoryUsage().heapUsed)
  yield* gauge("nodejs_heap_size_total_bytes", "V8 heap reserved, in bytes.", {}, () => process.memoryUsage().heapTotal)
  yield* gauge("nodejs_external_memory_bytes", "Memory held outside the V8 heap (buffers), in bytes.", {}, () => process.memoryUsage().external)
  yield* counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", {}, () => {
    const { system, user } = process.cpuUsage()
    return (user + system) / 1e6
  })
}))
