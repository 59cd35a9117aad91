/**
 * Routes held in memory and changed through this service: for tests, and for programs (logtail)
 * that add and remove routes themselves. Writable.
 */
import { Context, Effect, Layer } from "effect"
import { type Route, RouteChange } from "../../domain/Route.ts"
import { Readiness } from "../Readiness.ts"
import { RouteTable } from "../routing/RouteTable.ts"
import { WritableDatasource } from "./WritableDatasource.ts"

const SOURCE = "memory"

export class MemoryDatasource extends Context.Service<MemoryDatasource, {
  readonly add: (route: Route) => Effect.Effect<void>
  readonly remove: (route: Route) => Effect.Effect<void>
  readonly replace: (routes: ReadonlyArray<Route>) => Effect.Effect<void>
}>()("logtrain/datasources/Memory") {
  static readonly layer = (initial: ReadonlyArray<Route> = []) =>
    Layer.effect(
      MemoryDatasource,
      Effect.gen(function*() {
        const table = yield* RouteTable
        const check = yield* (yield* Readiness).register(`datasource:${SOURCE}`)
        yield* table.apply(SOURCE, RouteChange.Replace({ routes: initial }))
        yield* check.ready
        return MemoryDatasource.of({
          add: (route) => table.apply(SOURCE, RouteChange.Add({ route })),
          remove: (route) => table.apply(SOURCE, RouteChange.Remove({ route })),
          replace: (routes) => table.apply(SOURCE, RouteChange.Replace({ routes }))
        })
      })
    )

  /** The memory datasource as the writable one. */
  static readonly writable = Layer.effect(
    WritableDatasource,
    Effect.gen(function*() {
      const memory = yield* MemoryDatasource
      return WritableDatasource.of({ name: SOURCE, add: memory.add, remove: memory.remove })
    })
  )
}
