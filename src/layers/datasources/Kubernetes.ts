/**
 * Routes from Kubernetes annotations (`KUBERNETES_DATASOURCE=true`): every deployment,
 * statefulset, daemonset and pod (of this node) with `logtrain.akkeris.io/drains` routes its
 * hostname to those drains, live.
 *
 * - Hostname: a workload's `logtrain.akkeris.io/hostname` annotation, else `name.namespace`
 *   (`name-namespace` with AKKERIS=true); a pod's logs are named after its top-level owner, as the
 *   container log input names them, so the route matches the logs.
 * - Each object is its own source of routes (`kubernetes:deployments/ns/name`): an update replaces
 *   that object's routes and the route table adds and removes only the difference. After a 410
 *   Gone or a reconnection, the informer's full list removes the routes of objects deleted
 *   meanwhile — no event is lost and no stale route stays.
 * - `persistent://` is accepted on pods only (as the original): on a workload it is ignored with a
 *   warning and counted. An invalid URL is ignored the same way by the route table; the object's
 *   other URLs still route.
 * - A namespace's `logtrain.akkeris.io/drains` is the default of the deployments, statefulsets and
 *   daemonsets in it that have no such annotation of their own (an empty one opts out): a change
 *   to it routes them again, live.
 * - `logtrain.akkeris.io/rate-limit` on the same objects limits their hostname (RateLimits), as
 *   live as the routes.
 * - Writable (logtail's live tails) when RBAC lets this service account patch the workload kinds:
 *   adding a route appends the URL to the annotation of the workload whose hostname it is;
 *   removing takes it out. Otherwise it says it is read-only.
 */
import { Effect, Layer, Option } from "effect"
import { allowedOn, DrainsAnnotation, hostnameOf, type KubeObject, namingOf, parseDrains, RateLimitAnnotation } from "../../domain/Kubernetes.ts"
import { type Route, RouteChange } from "../../domain/Route.ts"
import * as Informer from "../kubernetes/Informer.ts"
import { KubeApi, Resources } from "../kubernetes/KubeApi.ts"
import { KubeCache } from "../kubernetes/KubeCache.ts"
import * as Log from "../Log.ts"
import { RateLimits } from "../routing/RateLimits.ts"
import { Readiness } from "../Readiness.ts"
import { RouteTable } from "../routing/RouteTable.ts"
import * as Telemetry from "../Telemetry.ts"
import { DatasourceWriteError, WritableDatasource } from "./WritableDatasource.ts"

const SOURCE = "kubernetes"

const make = Effect.gen(function*() {
  const cache = yield* KubeCache
  const api = yield* KubeApi
  const table = yield* RouteTable
  const check = yield* (yield* Readiness).register(`datasource:${SOURCE}`)
  const scope = yield* Effect.scope
  const limits = Option.getOrUndefined(yield* Effect.serviceOption(RateLimits))
  // Namespaces: their drains annotation is the default of the workloads in them (followed here
  // only: the container log input has no use for them).
  // Only where RBAC allows (it did not before): without, a warning, and no defaults.
  // (An API that cannot be asked now: assumed allowed, the informer retries.)
  const mayWatchNamespaces = yield* api.allowed("watch", Resources.namespaces).pipe(Effect.orElseSucceed(() => true))
  const namespaces = mayWatchNamespaces ? yield* Informer.make(Resources.namespaces) : undefined
  if (namespaces === undefined) {
    yield* Log.warn("this service account may not watch namespaces: namespace default drains are off (see the README's RBAC)")
  }
  /** A namespace's default drains annotation, if it has one. */
  const defaultOf = (namespace: string) => namespaces?.get("", namespace)?.annotations[DrainsAnnotation]
  let refused = 0
  /** Objects refused a persistent:// URL already warned about (bounded). */
  const warned = new Set<string>()
  yield* Telemetry.counter(
    "logtrain_kubernetes_routes_refused_total",
    "Drain URLs in annotations not allowed on that kind of object (persistent:// on a workload).",
    {},
    () => refused
  )

  /** The hostname an object's routes and limits are for. */
  const hostnameFor = (object: KubeObject) =>
    object.kind === "Pod"
      ? Effect.map(cache.topOwner(object), (top) => namingOf(object, top, cache.akkeris).hostname)
      : Effect.succeed(hostnameOf(object, cache.akkeris))

  /** A workload's own drains annotation, else (none at all, not even empty) its namespace's. */
  const drainsOf = (object: KubeObject) =>
    object.annotations[DrainsAnnotation] ?? (object.kind === "Pod" ? undefined : defaultOf(object.namespace))

  const routesOf = (object: KubeObject) =>
    Effect.gen(function*() {
      const endpoints = parseDrains(drainsOf(object))
      if (endpoints.length === 0) return []
      const hostname = yield* hostnameFor(object)
      const routes: Array<Route> = []
      for (const endpoint of endpoints) {
        if (allowedOn(object.kind, endpoint)) {
          routes.push({ hostname, endpoint })
          continue
        }
        refused++
        const key = `${object.kind}/${object.namespace}/${object.name}`
        if (!warned.has(key)) {
          if (warned.size >= 10_000) warned.clear()
          warned.add(key)
          yield* Log.warn("route ignored: persistent:// drains may only be set on pods", { object: key })
        }
      }
      return routes
    })

  /** Follows one informer: each object's routes replace what that object routed before. */
  const follow = (informer: Informer.Informer) => {
    const prefix = `${SOURCE}:${informer.resource.plural}/`
    const sourceOf = (object: KubeObject) => `${prefix}${object.namespace}/${object.name}`
    /** Sources that route something now, and those that limit a hostname. */
    const routing = new Set<string>()
    const limiting = new Set<string>()
    const set = (source: string, routes: ReadonlyArray<Route>) =>
      Effect.suspend(() => {
        if (routes.length === 0 && !routing.has(source)) return Effect.void
        if (routes.length === 0) routing.delete(source)
        else routing.add(source)
        return table.apply(source, RouteChange.Replace({ routes }))
      })
    const limit = (source: string, object: KubeObject | undefined) =>
      Effect.suspend(() => {
        if (limits === undefined) return Effect.void
        const spec = object?.annotations[RateLimitAnnotation]
        if (spec === undefined) {
          if (!limiting.delete(source)) return Effect.void
          return limits.set(source, "", undefined)
        }
        limiting.add(source)
        return Effect.flatMap(hostnameFor(object!), (hostname) => limits.set(source, hostname, spec))
      })
    const upsert = (object: KubeObject) =>
      Effect.andThen(Effect.flatMap(routesOf(object), (routes) => set(sourceOf(object), routes)), limit(sourceOf(object), object))
    const remove = (source: string) => Effect.andThen(set(source, []), limit(source, undefined))
    const listen = informer.listen((events) =>
      Effect.forEach(events, (event) => {
        switch (event._tag) {
          case "Upserted":
            return upsert(event.object)
          case "Deleted":
            return remove(sourceOf(event.object))
          case "Synced": {
            const present = new Set(event.objects.map(sourceOf))
            const gone = [...new Set([...routing, ...limiting])].filter((source) => !present.has(source))
            return Effect.andThen(
              Effect.forEach(gone, remove, { discard: true }),
              Effect.forEach(event.objects, upsert, { discard: true })
            )
          }
        }
      }, { discard: true })
    )
    /** Routes again the objects of `namespace` (all, if undefined): its default changed. */
    const refresh = (namespace: string | undefined) =>
      Effect.forEach(
        [...informer.objects()].filter((object) => namespace === undefined || object.namespace === namespace),
        upsert,
        { discard: true }
      )
    return { listen, refresh }
  }

  // Workloads before pods: a pod's routes are named after its owner.
  const workloadInformers = [cache.deployments, cache.statefulsets, cache.daemonsets]
  const informers = [...workloadInformers, cache.pods]
  const followed = informers.map(follow)
  yield* Effect.forEach(followed, (f) => f.listen, { discard: true })
  // A namespace's default changed (or all of them, after a list): its workloads are routed again.
  const defaults = new Map<string, string | undefined>()
  if (namespaces !== undefined) {
    yield* namespaces.listen((events) =>
    Effect.forEach(events, (event) => {
      const changed: Array<string> = []
      const note = (name: string, annotation: string | undefined) => {
        if (defaults.get(name) === annotation && defaults.has(name)) return
        if (annotation === undefined) defaults.delete(name)
        else defaults.set(name, annotation)
        changed.push(name)
      }
      switch (event._tag) {
        case "Upserted":
          note(event.object.name, event.object.annotations[DrainsAnnotation])
          break
        case "Deleted":
          note(event.object.name, undefined)
          break
        case "Synced": {
          const present = new Set(event.objects.map((object) => object.name))
          // (Deleting from a Map while iterating it is safe.)
          for (const name of defaults.keys()) if (!present.has(name)) note(name, undefined)
          for (const object of event.objects) note(object.name, object.annotations[DrainsAnnotation])
        }
      }
      return Effect.forEach(changed, (name) => Effect.forEach(followed.slice(0, workloadInformers.length), (f) => f.refresh(name), { discard: true }), {
        discard: true
      })
    }, { discard: true })
    )
  }
  yield* Effect.gen(function*() {
    yield* Effect.forEach([...informers, ...(namespaces === undefined ? [] : [namespaces])], (informer) => informer.synced, { discard: true })
    yield* check.ready
    yield* Log.info("routes loaded", {
      from: SOURCE,
      objects: informers.map((informer) => `${informer.resource.plural}=${informer.size()}`).join(" "),
      routes: table.routes().length
    })
  }).pipe(Effect.forkIn(scope))

  // Writing: only where RBAC allows patching every workload kind.
  const workloads = [Resources.deployments, Resources.statefulsets, Resources.daemonsets]
  const denied = yield* Effect.forEach(workloads, (resource) =>
    api.allowed("patch", resource).pipe(
      Effect.map((allowed) => (allowed ? [] : [resource.plural])),
      Effect.catch((error) => Effect.succeed([`${resource.plural} (${error.message})`]))
    )).pipe(Effect.map((lists) => lists.flat()))
  const readOnly = denied.length === 0 ? undefined : `this service account may not patch ${denied.join(", ")}`
  if (readOnly !== undefined) yield* Log.info(`kubernetes datasource is read-only: ${readOnly}`)

  /** The workload whose routes are for `hostname`. */
  const workloadFor = (hostname: string) => {
    for (const informer of [cache.deployments, cache.statefulsets, cache.daemonsets]) {
      for (const object of informer.objects()) {
        if (hostnameOf(object, cache.akkeris) === hostname) return { informer, object }
      }
    }
    return undefined
  }

  const edit = (what: string, route: Route, change: (endpoints: ReadonlyArray<string>) => ReadonlyArray<string>) =>
    Effect.gen(function*() {
      if (readOnly !== undefined) {
        return yield* new DatasourceWriteError({ source: SOURCE, detail: `read-only: ${readOnly}` })
      }
      const found = workloadFor(route.hostname)
      if (found === undefined) {
        return yield* new DatasourceWriteError({ source: SOURCE, detail: `${what}: no deployment, statefulset or daemonset has hostname ${route.hostname}` })
      }
      const { informer, object } = found
      const before = parseDrains(object.annotations[DrainsAnnotation])
      const after = change(before)
      if (after.length === before.length && after.every((endpoint, i) => endpoint === before[i])) return
      yield* api.patchAnnotations(informer.resource, object.namespace, object.name, {
        [DrainsAnnotation]: after.length === 0 ? null : after.join(";")
      }).pipe(
        Effect.mapError((error) => new DatasourceWriteError({ source: SOURCE, detail: `${what}: ${error.message}` }))
      )
    })

  return WritableDatasource.of({
    name: SOURCE,
    readOnly,
    add: (route) =>
      edit("add", route, (endpoints) => (endpoints.includes(route.endpoint) ? endpoints : [...endpoints, route.endpoint])),
    remove: (route) => edit("remove", route, (endpoints) => endpoints.filter((endpoint) => endpoint !== route.endpoint))
  })
})

export const layer: Layer.Layer<WritableDatasource, never, KubeCache | KubeApi | RouteTable | Readiness> = Layer.effect(
  WritableDatasource,
  make
)
