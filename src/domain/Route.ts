/**
 * Routes — "logs of this hostname go to that drain" — and the index the router looks them up in.
 *
 * Datasources describe their routes as a stream of RouteChanges. `Replace` carries a source's whole
 * set (its first load, or a reload after a reconnect or a 410 Gone) and the index works out the
 * difference, so no datasource has to diff by hand and a reload can never leave a stale route.
 * Several datasources may route the same hostname to the same drain; the route lives while any of
 * them holds it.
 */
import { Data } from "effect"

export interface Route {
  /** The packet hostname this route matches, or `*` for every hostname. */
  readonly hostname: string
  /** The drain URL, as written. */
  readonly endpoint: string
}

export const WILDCARD = "*"

export type RouteChange = Data.TaggedEnum<{
  Add: { readonly route: Route }
  Remove: { readonly route: Route }
  /** Everything the source routes now; whatever it said before and does not say again is removed. */
  Replace: { readonly routes: ReadonlyArray<Route> }
}>

export const RouteChange = Data.taggedEnum<RouteChange>()

export interface RouteIndexUpdate {
  readonly added: ReadonlyArray<Route>
  readonly removed: ReadonlyArray<Route>
  /** Endpoints no route points at any more: their drains can be closed. */
  readonly unusedEndpoints: ReadonlyArray<string>
}

const keyOf = (route: Route): string => `${route.hostname}\u0000${route.endpoint}`

export class RouteIndex {
  /** What each source holds, by route key. */
  private readonly bySource = new Map<string, Map<string, Route>>()
  /** How many sources hold each route. */
  private readonly holders = new Map<string, number>()
  /** The effective routes: hostname -> endpoints. */
  private readonly byHost = new Map<string, Set<string>>()
  /** How many effective routes use each endpoint. */
  private readonly endpointUse = new Map<string, number>()
  /** Lookup results for routed hostnames (their endpoints plus the wildcard's), rebuilt lazily. */
  private readonly resolved = new Map<string, ReadonlyArray<string>>()
  private wildcard: ReadonlyArray<string> = []

  /** The endpoints a packet with this hostname goes to; undefined when none (a dead packet). */
  lookup(hostname: string): ReadonlyArray<string> | undefined {
    const cached = this.resolved.get(hostname)
    if (cached !== undefined) return cached
    const own = this.byHost.get(hostname)
    if (own === undefined) return this.wildcard.length > 0 ? this.wildcard : undefined
    const endpoints = [...new Set([...own, ...this.wildcard])]
    this.resolved.set(hostname, endpoints)
    return endpoints
  }

  /** Number of effective routes. */
  get size(): number {
    return this.holders.size
  }

  /** Endpoints at least one route uses. */
  get endpointCount(): number {
    return this.endpointUse.size
  }

  /** Sources holding at least one route. */
  get sourceCount(): number {
    return this.bySource.size
  }

  isUsed(endpoint: string): boolean {
    return this.endpointUse.has(endpoint)
  }

  routes(): Array<Route> {
    const out: Array<Route> = []
    for (const [hostname, endpoints] of this.byHost) {
      for (const endpoint of endpoints) out.push({ hostname, endpoint })
    }
    return out
  }

  apply(source: string, change: RouteChange): RouteIndexUpdate {
    let held = this.bySource.get(source)
    if (held === undefined) {
      held = new Map()
      this.bySource.set(source, held)
    }
    const added: Array<Route> = []
    const removed: Array<Route> = []
    const unused: Array<string> = []
    const take = (route: Route) => {
      const key = keyOf(route)
      if (held.has(key) || route.hostname.length === 0 || route.endpoint.length === 0) return
      held.set(key, route)
      const count = this.holders.get(key) ?? 0
      this.holders.set(key, count + 1)
      if (count === 0) {
        this.link(route)
        added.push(route)
      }
    }
    const drop = (key: string) => {
      const route = held.get(key)
      if (route === undefined) return
      held.delete(key)
      const count = this.holders.get(key)! - 1
      if (count > 0) {
        this.holders.set(key, count)
        return
      }
      this.holders.delete(key)
      if (this.unlink(route)) unused.push(route.endpoint)
      removed.push(route)
    }
    switch (change._tag) {
      case "Add":
        take(change.route)
        break
      case "Remove":
        drop(keyOf(change.route))
        break
      case "Replace": {
        const next = new Set(change.routes.map(keyOf))
        for (const key of held.keys()) if (!next.has(key)) drop(key)
        for (const route of change.routes) take(route)
        break
      }
    }
    // Sources come and go (a datasource keeps one per Kubernetes object): an empty one is forgotten.
    if (held.size === 0) this.bySource.delete(source)
    if (added.length > 0 || removed.length > 0) {
      this.resolved.clear()
      this.wildcard = [...(this.byHost.get(WILDCARD) ?? [])]
    }
    // An endpoint dropped by one route and taken by another in the same change is still in use.
    return { added, removed, unusedEndpoints: unused.filter((endpoint) => !this.endpointUse.has(endpoint)) }
  }

  private link(route: Route): void {
    let endpoints = this.byHost.get(route.hostname)
    if (endpoints === undefined) {
      endpoints = new Set()
      this.byHost.set(route.hostname, endpoints)
    }
    endpoints.add(route.endpoint)
    this.endpointUse.set(route.endpoint, (this.endpointUse.get(route.endpoint) ?? 0) + 1)
  }

  /** Removes an effective route; true when its endpoint is now unused. */
  private unlink(route: Route): boolean {
    const endpoints = this.byHost.get(route.hostname)
    if (endpoints !== undefined) {
      endpoints.delete(route.endpoint)
      if (endpoints.size === 0) this.byHost.delete(route.hostname)
    }
    const use = (this.endpointUse.get(route.endpoint) ?? 1) - 1
    if (use > 0) {
      this.endpointUse.set(route.endpoint, use)
      return false
    }
    this.endpointUse.delete(route.endpoint)
    return true
  }
}
