/**
 * Drains that deliver to memory: a DrainFactory that gives every drain URL its own MemorySink,
 * so router tests can see what each endpoint received, hold it (like a slow receiver), or make it
 * fail — with real URLs, through the real Drains and DrainRunner.
 */
import { Effect, Layer } from "effect"
import { DrainFactory } from "../../src/layers/drains/registry.ts"
import * as MemorySink from "./MemorySink.ts"

export interface MemoryDrains {
  /** The sink of an endpoint, created on first use (so a test can hold or fail it before packets come). */
  readonly sink: (endpoint: string) => Effect.Effect<MemorySink.MemorySink>
  /** Messages an endpoint has received so far. */
  readonly received: (endpoint: string) => Array<string>
  /** How many times each endpoint's drain was opened. */
  readonly opened: Map<string, number>
}

export const make = Effect.sync(() => {
  const sinks = new Map<string, MemorySink.MemorySink>()
  const opened = new Map<string, number>()
  const sink = (endpoint: string) =>
    Effect.gen(function*() {
      let s = sinks.get(endpoint)
      if (s === undefined) {
        s = yield* MemorySink.make()
        sinks.set(endpoint, s)
      }
      return s
    })
  const drains: MemoryDrains = {
    sink,
    opened,
    received: (endpoint) => sinks.get(endpoint)?.messages() ?? []
  }
  const layer = Layer.succeed(DrainFactory, (url) =>
    Effect.map(sink(url.endpoint), (s) => {
      opened.set(url.endpoint, (opened.get(url.endpoint) ?? 0) + 1)
      return s
    }))
  return { drains, layer }
})
