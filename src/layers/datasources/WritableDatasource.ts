/**
 * A datasource that can be written to: logtail adds a route while a live tail is open and removes
 * it afterwards. The Postgres and memory datasources provide it (Kubernetes, where RBAC allows).
 */
import { Context, Data, Effect } from "effect"
import type { Route } from "../../domain/Route.ts"

export class DatasourceWriteError extends Data.TaggedError("DatasourceWriteError")<{
  readonly source: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.source}: ${this.detail}`
  }
}

export class WritableDatasource extends Context.Service<WritableDatasource, {
  readonly name: string
  /** Why this datasource cannot be written to (then add and remove fail saying so); undefined when it can. */
  readonly readOnly?: string | undefined
  /** Adds a route, unless the datasource holds it already; every logtrain following it routes it soon after. */
  readonly add: (route: Route) => Effect.Effect<void, DatasourceWriteError>
  /** Removes a route (every copy of it this datasource holds). */
  readonly remove: (route: Route) => Effect.Effect<void, DatasourceWriteError>
}>()("logtrain/datasources/WritableDatasource") {}
