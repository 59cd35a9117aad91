/**
 * The routing core both programs share: Ingest → Router → RouteTable → Drains, plus Readiness.
 *
 * Layers are released in the reverse order they are built, and each program builds its inputs on
 * top of this core, so shutdown goes: inputs stop; the router routes what is still queued; the
 * drains flush, all at once, within their flush timeout.
 */
import { Effect, Layer } from "effect"
import * as DrainSink from "../drains/DrainSink.ts"
import { StopDeadline } from "../drains/StopDeadline.ts"
import { Drains } from "./Drains.ts"
import { Ingest } from "./Ingest.ts"
import * as MemoryBudget from "../MemoryBudget.ts"
import { Readiness } from "../Readiness.ts"
import { RateLimits } from "./RateLimits.ts"
import { RouteTable } from "./RouteTable.ts"
import * as Router from "./Router.ts"
import * as Telemetry from "../Telemetry.ts"

export interface Options {
  readonly ingestCapacity: number
  /** Full drain: drop the packet (default), or make the router wait for room. */
  readonly whenFull?: "drop" | "block" | undefined
  /** What the operator configured; the rest comes from each kind and the defaults. */
  readonly drainSettings: Partial<DrainSink.DrainSettings>
  /** The memory budget for buffered log data; none bounds nothing but each drain's own limits. */
  readonly budget?: MemoryBudget.Budget | undefined
}

/**
 * The core. `drainServices` are services some drain kinds look for (the persistent log store);
 * they are also passed on, for the HTTP routes that read what those drains wrote.
 */
export const layer = <A = never, E = never>(options: Options, drainServices?: Layer.Layer<A, E>) => {
  const drains = Drains.layer.pipe(
    Layer.provide(Layer.succeed(DrainSink.DrainSettings, options.drainSettings)),
    Layer.provideMerge(Layer.effect(StopDeadline, StopDeadline.make)),
    Layer.provideMerge(drainServices ?? (Layer.empty as unknown as Layer.Layer<A, E>))
  )
  const core = Layer.mergeAll(
    RouteTable.layer.pipe(Layer.provideMerge(drains)),
    Ingest.layer({ capacity: options.ingestCapacity }),
    Readiness.layer,
    RateLimits.layer,
    Telemetry.processMetrics
  )
  return Router.layer({ whenFull: options.whenFull ?? "drop" }).pipe(
    Layer.provideMerge(core),
    Layer.provideMerge(options.budget === undefined ? Layer.empty : MemoryBudget.provide(options.budget))
  )
}

/**
 * Marks the start of the stop when it is released: put it on top of everything, so that it is
 * released first and every drain's flush is measured from the moment the stop began.
 */
export const stopping: Layer.Layer<never, never, StopDeadline> = Layer.effectDiscard(
  Effect.flatMap(StopDeadline, (deadline) => Effect.addFinalizer(() => deadline.begin))
)
