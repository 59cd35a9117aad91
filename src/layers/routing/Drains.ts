/**
 * The open drains, one per endpoint URL.
 *
 * A drain is opened the first time a packet is routed to its endpoint (a node sees the logs of few
 * of the apps that have routes, so most drains are never opened) and closed when no route uses its
 * endpoint any more: it flushes what it holds, then closes its connections. On shutdown every drain
 * flushes at once, under one deadline.
 *
 * A drain that cannot be made (a kind this version lacks) still opens: it drops what it is given,
 * counted as `unsupported`, so the problem shows in metrics and one warning instead of failing
 * routes or the router.
 */
import { Context, Effect, Exit, Layer, RcMap, Result, Scope } from "effect"
import * as DrainUrl from "../../domain/DrainUrl.ts"
import * as Telemetry from "../Telemetry.ts"
import { DrainError } from "../drains/DrainError.ts"
import * as DrainRunner from "../drains/DrainRunner.ts"
import * as DrainSink from "../drains/DrainSink.ts"
import type * as DrainStats from "../drains/DrainStats.ts"
import { DrainFactory } from "../drains/registry.ts"
import * as Log from "../Log.ts"

export class Drains extends Context.Service<Drains, {
  /** The open drain of an endpoint, if it is open: the router's fast path. */
  readonly get: (endpoint: string) => DrainSink.DrainHandle | undefined
  /** The drain of an endpoint, opened if need be. */
  readonly open: (endpoint: string) => Effect.Effect<DrainSink.DrainHandle>
  /** Closes an endpoint's drain, flushing it first; does nothing if it is not open. */
  readonly release: (endpoint: string) => Effect.Effect<void>
  readonly openCount: () => number
}>()("logtrain/routing/Drains") {
  static readonly layer = Layer.effect(
    Drains,
    Effect.gen(function*() {
      const open = new Map<string, { readonly scope: Scope.Closeable; readonly handle: DrainSink.DrainHandle }>()
      const drains = yield* RcMap.make({ lookup: build })
      yield* Telemetry.gauge("logtrain_drains_open", "Drains open (endpoints that have received packets).", {}, () =>
        open.size)

      const release = (endpoint: string) =>
        Effect.suspend(() => {
          const entry = open.get(endpoint)
          if (entry === undefined) return Effect.void
          open.delete(endpoint)
          entry.handle.retire()
          return Scope.close(entry.scope, Exit.void)
        })

      // Every drain's scope is a child of this one, made after the RcMap so that it closes first,
      // and closing it closes them all at once: on shutdown every drain flushes concurrently,
      // under one deadline. (Forked from the layer's own scope, each drain would be closed one
      // after the other, as a sequential scope closes its children: 12 drains failing to flush
      // took 12 times the flush timeout.)
      const drainsScope = yield* Scope.fork(yield* Effect.scope, "parallel")
      return Drains.of({
        get: (endpoint) => open.get(endpoint)?.handle,
        open: (endpoint) =>
          Effect.suspend(() => {
            const existing = open.get(endpoint)
            if (existing !== undefined) return Effect.succeed(existing.handle)
            return Effect.gen(function*() {
              const scope = yield* Scope.fork(drainsScope)
              const handle = yield* RcMap.get(drains, endpoint).pipe(Scope.provide(scope))
              open.set(endpoint, { scope, handle })
              return handle
            })
          }),
        release,
        openCount: () => open.size
      })
    })
  )
}

/** Opens a drain: its runner, fed by the sink of its kind (or by one that refuses everything). */
const build = (endpoint: string) =>
  Effect.gen(function*() {
    const parsed = DrainUrl.parse(endpoint)
    const display = Result.isSuccess(parsed) ? parsed.success.display : DrainUrl.redact(endpoint)
    const kind = Result.isSuccess(parsed) ? parsed.success._tag : "Invalid"
    const sinkFor = yield* DrainFactory
    const sink = yield* (Result.isSuccess(parsed)
      ? sinkFor(parsed.success)
      : Effect.fail(new DrainError({ reason: "Unsupported", drain: display, detail: parsed.failure.detail }))).pipe(
        Effect.catch((error) =>
          Effect.as(
            Log.warn("drain cannot be opened; packets routed to it are dropped", { drain: display, error: error.message }),
            refusing(error)
          )
        )
      )
    // Registered first so it runs last: after the runner has flushed.
    let stats: DrainStats.DrainStats | undefined
    yield* Effect.addFinalizer(() =>
      Log.info("drain closed", { drain: display, sent: stats?.sent ?? 0, ...stats?.dropped })
    )
    const handle = yield* DrainRunner.make({ endpoint, display, kind, sink })
    stats = handle.stats
    yield* Log.info("drain opened", { drain: display })
    return handle
  })

/** A sink whose every send fails with the same permanent error. */
const refusing = (error: DrainError): DrainSink.DrainSink => ({
  maxWorkers: 1,
  sender: Effect.succeed({ send: () => Effect.fail(error) })
})
