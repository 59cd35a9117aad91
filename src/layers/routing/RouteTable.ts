/**
 * The live route table: every datasource's RouteChanges applied to one RouteIndex, which the router
 * reads synchronously for each packet.
 *
 * Drain URLs come from users, so each route's endpoint is parsed before it is taken: an invalid one
 * is left out, counted, and warned about once (per datasource and URL), while the datasource's
 * other routes apply as usual. When a change leaves an endpoint with no route, its drain is closed
 * in the background (it flushes first).
 */
import { Context, Effect, Layer, Result, Scope } from "effect"
import * as DrainUrl from "../../domain/DrainUrl.ts"
import { type Route, type RouteChange, RouteChange as Change, RouteIndex } from "../../domain/Route.ts"
import { Drains } from "./Drains.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Log from "../Log.ts"

export class RouteTable extends Context.Service<RouteTable, {
  /** Endpoints for a packet hostname; undefined when it has none (a dead packet). */
  readonly lookup: (hostname: string) => ReadonlyArray<string> | undefined
  /** Applies a change from the named datasource. */
  readonly apply: (source: string, change: RouteChange) => Effect.Effect<void>
  readonly routes: () => ReadonlyArray<Route>
}>()("logtrain/RouteTable") {
  static readonly layer = Layer.effect(
    RouteTable,
    Effect.gen(function*() {
      const drains = yield* Drains
      const scope = yield* Effect.scope
      const index = new RouteIndex()
      const rejected = new Map<string, number>()
      /** Invalid URLs already warned about, per source; bounded, so a flood of bad URLs cannot grow it. */
      const warned = new Set<string>()

      yield* Telemetry.gauge("logtrain_routes", "Routes in the table (hostname → drain).", {}, () => index.size)
      yield* Telemetry.gauge("logtrain_route_endpoints", "Distinct drain endpoints routes point at.", {}, () =>
        index.endpointCount)

      const reject = (source: string, route: Route, error: DrainUrl.DrainUrlError) =>
        Effect.gen(function*() {
          // Metrics are per datasource (`kubernetes`), not per object (`kubernetes:deployments/ns/web`).
          const datasource = source.split(":")[0]!
          const key = `${datasource}\u0000${error.reason}`
          const count = rejected.get(key)
          rejected.set(key, (count ?? 0) + 1)
          if (count === undefined) {
            yield* Telemetry.counter(
              "logtrain_routes_rejected_total",
              "Routes left out because their drain URL is invalid.",
              { source: datasource, reason: error.reason },
              () => rejected.get(key) ?? 0
            ).pipe(Scope.provide(scope))
          }
          const warning = `${source}\u0000${route.endpoint}`
          if (warned.has(warning)) return
          if (warned.size >= 10_000) warned.clear()
          warned.add(warning)
          yield* Log.warn("route ignored: invalid drain URL", {
            source,
            hostname: route.hostname,
            error: error.message
          })
        })

      /** The routes of `routes` whose endpoint parses; the others are rejected. */
      const valid = (source: string, routes: ReadonlyArray<Route>) =>
        Effect.gen(function*() {
          const out: Array<Route> = []
          for (const route of routes) {
            const parsed = DrainUrl.parse(route.endpoint)
            if (Result.isSuccess(parsed)) out.push(route)
            else yield* reject(source, route, parsed.failure)
          }
          return out
        })

      const apply = (source: string, change: RouteChange) =>
        Effect.gen(function*() {
          let checked: RouteChange = change
          if (change._tag === "Add") {
            const [route] = yield* valid(source, [change.route])
            if (route === undefined) return
          } else if (change._tag === "Replace") {
            checked = Change.Replace({ routes: yield* valid(source, change.routes) })
          }
          const update = index.apply(source, checked)
          if (update.added.length > 0 || update.removed.length > 0) {
            yield* Log.debug("routes changed", {
              source,
              added: update.added.length,
              removed: update.removed.length,
              routes: index.size
            })
          }
          for (const endpoint of update.unusedEndpoints) {
            yield* Effect.forkIn(drains.release(endpoint), scope)
          }
        })

      return RouteTable.of({
        lookup: (hostname) => index.lookup(hostname),
        apply,
        routes: () => index.routes()
      })
    })
  )
}
