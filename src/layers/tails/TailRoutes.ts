/**
 * Which hostnames have a live tail open, and the route that brings their lines here: while any
 * tail of a hostname is open, the writable datasource (Postgres rows, a Kubernetes annotation)
 * holds `hostname → endpoint` (logtail's syslog Service), so every agent following it forwards the
 * app to logtail; after the last one ends, the route is removed.
 *
 * `local` (here) is for one replica: it counts its own tails, and at start removes every route to
 * the endpoint (a previous run of it left them: it was the only one). Several replicas use the Redis
 * leases of redis/RedisTails.ts, which remove only routes whose owners are gone.
 */
import { Context, Effect, Layer, Option, type Scope } from "effect"
import type { Route } from "../../domain/Route.ts"
import { WritableDatasource } from "../datasources/WritableDatasource.ts"
import * as Log from "../Log.ts"
import { datasourcesLoaded } from "../Readiness.ts"
import { RouteTable } from "../routing/RouteTable.ts"

export class TailRoutes extends Context.Service<TailRoutes, {
  /** A tail of the hostname is open here while the scope lasts. */
  readonly hold: (hostname: string) => Effect.Effect<void, never, Scope.Scope>
  /** Whether a tail of the hostname is open (on any replica, as far as this one knows); synchronous, for the hot path. */
  readonly tailed: (hostname: string) => boolean
}>()("logtrain/logtail/TailRoutes") {}

export interface Options {
  /** The drain URL agents send a tailed app's logs to (this logtail's syslog Service); none: no routes are written. */
  readonly endpoint: string | undefined
}

/** Adds and removes the route, logging (not failing) when the datasource refuses. */
export const routeWriter = (writable: WritableDatasource["Service"], endpoint: string) => {
  const routeOf = (hostname: string): Route => ({ hostname, endpoint })
  return {
    add: (hostname: string) =>
      writable.add(routeOf(hostname)).pipe(
        Effect.tap(() => Log.info("tail route added", { hostname, endpoint, datasource: writable.name })),
        Effect.as(true),
        Effect.catch((error) =>
          Effect.as(Log.warn("cannot add the tail route: agents will not forward this app", { hostname, error: error.message }), false)
        )
      ),
    remove: (hostname: string) =>
      writable.remove(routeOf(hostname)).pipe(
        Effect.tap(() => Log.info("tail route removed", { hostname, endpoint })),
        Effect.as(true),
        Effect.catch((error) => Effect.as(Log.warn("cannot remove the tail route", { hostname, error: error.message }), false))
      )
  }
}

/** One replica: its own tails are all there are. */
export const local = (options: Options) =>
  Layer.effect(
    TailRoutes,
    Effect.gen(function*() {
      const writable = yield* Effect.serviceOption(WritableDatasource)
      const writer = Option.isSome(writable) && options.endpoint !== undefined ? routeWriter(writable.value, options.endpoint) : undefined
      const held = new Map<string, number>()

      const routeTable = yield* Effect.serviceOption(RouteTable)
      if (writer !== undefined && options.endpoint !== undefined && Option.isSome(routeTable)) {
        const endpoint = options.endpoint
        const table = routeTable.value
        // Routes a previous run left (a crash): removed once the datasource has loaded, in the
        // background (/healthz answers meanwhile). A tail opened before that may lose its route.
        yield* Effect.gen(function*() {
          yield* datasourcesLoaded
          const stale = table.routes().filter((route) => route.endpoint === endpoint && !held.has(route.hostname))
          for (const route of stale) yield* writer.remove(route.hostname)
          if (stale.length > 0) yield* Log.info("removed stale tail routes", { count: stale.length, endpoint })
        }).pipe(Effect.forkScoped)
      }

      return TailRoutes.of({
        hold: (hostname) =>
          Effect.acquireRelease(
            Effect.suspend(() => {
              const count = held.get(hostname) ?? 0
              held.set(hostname, count + 1)
              return count === 0 && writer !== undefined ? Effect.asVoid(writer.add(hostname)) : Effect.void
            }),
            () =>
              Effect.suspend(() => {
                const count = (held.get(hostname) ?? 1) - 1
                if (count > 0) return Effect.sync(() => void held.set(hostname, count))
                held.delete(hostname)
                return writer === undefined ? Effect.void : Effect.asVoid(writer.remove(hostname))
              })
          ),
        tailed: (hostname) => held.has(hostname)
      })
    })
  )
