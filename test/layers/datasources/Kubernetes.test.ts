import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Kubernetes from "../../../src/layers/datasources/Kubernetes.ts"
import { WritableDatasource } from "../../../src/layers/datasources/WritableDatasource.ts"
import * as KubeClient from "../../../src/layers/kubernetes/KubeClient.ts"
import * as KubeCache from "../../../src/layers/kubernetes/KubeCache.ts"
import * as Permissions from "../../../src/layers/kubernetes/Permissions.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import { RouteTable } from "../../../src/layers/routing/RouteTable.ts"
import * as RouterCore from "../../../src/layers/routing/RouterCore.ts"
import { eventually } from "../../helpers/eventually.ts"
import * as FakeKubeApi from "../../helpers/FakeKubeApi.ts"
import * as MemoryDrains from "../../helpers/MemoryDrains.ts"

const DRAINS = "logtrain.akkeris.io/drains"

/** A fake API server for the test's duration. */
const fakeApi = Effect.acquireRelease(
  Effect.promise(() => FakeKubeApi.listen({ bookmarkIntervalMs: 200 })),
  (fake) => Effect.promise(() => fake.stop())
)

/** The routing core with the Kubernetes datasource, following `fake`; its log lines are collected. */
const start = (fake: FakeKubeApi.FakeKubeApi, options: { readonly akkeris?: boolean; readonly nodeName?: string } = {}) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const { layer: factory } = yield* MemoryDrains.make
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const core = RouterCore.layer({ ingestCapacity: 100, drainSettings: {} }).pipe(Layer.provide(factory))
    const kube = KubeCache.layer({ akkeris: options.akkeris ?? false, nodeName: options.nodeName }).pipe(
      Layer.provideMerge(KubeClient.layer({ kubeconfig: fake.kubeconfig }))
    )
    const context = yield* Layer.buildWithScope(
      Kubernetes.layer.pipe(
        Layer.provideMerge(kube),
        Layer.provideMerge(core),
        Layer.provide(Logger.layer([Logger.map(Logger.formatLogFmt, (line) => {
          logs.push(line)
        })]))
      ),
      scope
    )
    return {
      table: Context.get(context, RouteTable),
      readiness: Context.get(context, Readiness),
      writable: Context.get(context, WritableDatasource),
      logs
    }
  })

const routes = (table: RouteTable["Service"]) => table.routes().map((r) => `${r.hostname} -> ${r.endpoint}`).toSorted()

const ready = (readiness: Readiness["Service"]) =>
  Effect.map(readiness.report, (r) => r.checks.find((c) => c.name === "datasource:kubernetes")?.ready ?? false)

/** A series' value from the Prometheus text; `labels` must open its label set (or be empty). */
const metric = (text: string, name: string, labels = "") =>
  Number(new RegExp(`^${name}(?:\\{${labels}[^}]*\\})? (\\d+)`, "m").exec(text)?.[1] ?? Number.NaN)

/** The RBAC (group/resource/verb) a request to the API server needs. */
const rbacOf = (request: { readonly method: string; readonly path: string; readonly watch: boolean }): string => {
  const match = /^\/(?:api\/v1|apis\/([^/]+)\/v1)(?:\/namespaces\/[^/]+)?\/([^/]+)(\/[^/]+)?$/.exec(request.path)
  if (match === null) return `unknown ${request.method} ${request.path}`
  const [, group = "", resource, name] = match
  const verb = request.method === "PATCH"
    ? "patch"
    : request.method === "POST"
    ? "create"
    : name !== undefined
    ? "get"
    : request.watch
    ? "watch"
    : "list"
  return `${group}/${resource}/${verb}`
}

describe("Kubernetes datasource", () => {
  for (const resource of ["deployments", "statefulsets", "daemonsets"] as const) {
    it.live(`${resource}: routes follow the drains annotation as it is added, changed, removed, and the object deleted`, () =>
      Effect.gen(function*() {
        const fake = yield* fakeApi
        fake.create(resource, { name: "web", namespace: "shop", padding: 2000 })
        fake.create(resource, { name: "api", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://logs.example.com:514" } })
        const { readiness, table } = yield* start(fake)
        yield* eventually(() => routes(table), ["api.shop -> syslog+tcp://logs.example.com:514"], "initial list")
        assert.isTrue(yield* ready(readiness))

        fake.annotate(resource, "shop", "web", { [DRAINS]: "syslog+tls://a.example.com:6514; https://b.example.com/logs" })
        yield* eventually(() => routes(table), [
          "api.shop -> syslog+tcp://logs.example.com:514",
          "web.shop -> https://b.example.com/logs",
          "web.shop -> syslog+tls://a.example.com:6514"
        ], "annotation added")

        // Comma-separated, as the original's README has it; one URL kept, one replaced.
        fake.annotate(resource, "shop", "web", { [DRAINS]: "https://b.example.com/logs, syslog+udp://c.example.com:514" })
        yield* eventually(() => routes(table), [
          "api.shop -> syslog+tcp://logs.example.com:514",
          "web.shop -> https://b.example.com/logs",
          "web.shop -> syslog+udp://c.example.com:514"
        ], "annotation changed")

        fake.annotate(resource, "shop", "web", { [DRAINS]: null })
        yield* eventually(() => routes(table), ["api.shop -> syslog+tcp://logs.example.com:514"], "annotation removed")

        fake.remove(resource, "shop", "api")
        yield* eventually(() => routes(table), [], "object deleted")
      }))
  }

  it.live("the hostname annotation names the routes; AKKERIS=true names them name-namespace", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("deployments", { name: "web", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://a:1" } })
      fake.create("deployments", {
        name: "api",
        namespace: "shop",
        annotations: { [DRAINS]: "syslog+tcp://a:1", "logtrain.akkeris.io/hostname": "api.example.com" }
      })
      const { table } = yield* start(fake, { akkeris: true })
      yield* eventually(() => routes(table), ["api.example.com -> syslog+tcp://a:1", "web-shop -> syslog+tcp://a:1"], "akkeris names")
    }))

  it.live("pods of this node route under their owner's name; persistent:// is taken from pods only", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("deployments", { name: "web", namespace: "shop", annotations: { [DRAINS]: "persistent://nope; syslog+tcp://a:1" } })
      fake.create("replicasets", { name: "web-5d8f7", namespace: "shop", owner: { kind: "Deployment", name: "web" } })
      fake.create("pods", {
        name: "web-5d8f7-x2x9q",
        namespace: "shop",
        nodeName: "node-1",
        owner: { kind: "ReplicaSet", name: "web-5d8f7" },
        annotations: { [DRAINS]: "persistent://web-debug" }
      })
      fake.create("pods", { name: "batch", namespace: "jobs", nodeName: "node-1", annotations: { [DRAINS]: "syslog+tcp://b:1" } })
      fake.create("pods", { name: "elsewhere", namespace: "jobs", nodeName: "node-2", annotations: { [DRAINS]: "syslog+tcp://c:1" } })
      const { logs, table } = yield* start(fake, { nodeName: "node-1" })
      yield* eventually(() => routes(table), [
        "batch.jobs -> syslog+tcp://b:1",
        "web.shop -> persistent://web-debug",
        "web.shop -> syslog+tcp://a:1"
      ], "pods and their owner")
      assert.include(logs.join("\n"), "route ignored: persistent:// drains may only be set on pods")
      assert.include(logs.join("\n"), "Deployment/shop/web")
      assert.strictEqual(metric(yield* PrometheusMetrics.format(), "logtrain_kubernetes_routes_refused_total"), 1)

      fake.remove("pods", "jobs", "batch")
      yield* eventually(() => routes(table), ["web.shop -> persistent://web-debug", "web.shop -> syslog+tcp://a:1"], "pod deleted")
    }))

  it.live("an invalid drain URL is warned about and counted, and the object's other URLs still route", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("deployments", {
        name: "web",
        namespace: "shop",
        annotations: { [DRAINS]: "syslog+tcp://good.example.com:514;not a url;gopher://x.example.com" }
      })
      const { logs, table } = yield* start(fake)
      yield* eventually(() => routes(table), ["web.shop -> syslog+tcp://good.example.com:514"], "valid URL routed")
      const warnings = logs.filter((line) => line.includes("route ignored: invalid drain URL"))
      assert.strictEqual(warnings.length, 2, logs.join("\n"))
      assert.include(warnings.join("\n"), "source=kubernetes:deployments/shop/web")
      const text = yield* PrometheusMetrics.format()
      const rejected = [...text.matchAll(/^logtrain_routes_rejected_total\{[^}]*source="kubernetes"[^}]*\} (\d+)/gm)]
      assert.strictEqual(rejected.reduce((sum, m) => sum + Number(m[1]), 0), 2, text)
    }))

  it.live("a cut watch resumes where it left off: changes made meanwhile arrive, none is read twice", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("deployments", { name: "web", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://a:1" } })
      fake.create("deployments", { name: "api", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://b:1" } })
      const { table } = yield* start(fake)
      yield* eventually(() => routes(table), ["api.shop -> syslog+tcp://b:1", "web.shop -> syslog+tcp://a:1"], "listed")
      yield* eventually(() => fake.openWatches(), 5, "watching")
      const lists = fake.requests.filter((r) => !r.watch && r.method === "GET").length

      fake.cutWatches()
      fake.annotate("deployments", "shop", "web", { [DRAINS]: "syslog+tcp://a2:1" })
      fake.remove("deployments", "shop", "api")
      fake.create("deployments", { name: "new", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://c:1" } })
      yield* eventually(() => routes(table), ["new.shop -> syslog+tcp://c:1", "web.shop -> syslog+tcp://a2:1"], "after the cut")
      yield* eventually(() => fake.openWatches(), 5, "watching again")
      // Resumed from the resourceVersion: no list was needed.
      assert.strictEqual(fake.requests.filter((r) => !r.watch && r.method === "GET").length, lists)
    }))

  it.live("410 Gone: events lost while away are made up by listing again — deleted objects lose their routes", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("deployments", { name: "web", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://a:1" } })
      fake.create("statefulsets", { name: "db", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://b:1" } })
      fake.create("namespaces", { name: "team", annotations: { [DRAINS]: "syslog+tcp://team:1" } })
      fake.create("deployments", { name: "app", namespace: "team" })
      const { table } = yield* start(fake)
      yield* eventually(() => routes(table), ["app.team -> syslog+tcp://team:1", "db.shop -> syslog+tcp://b:1", "web.shop -> syslog+tcp://a:1"], "listed")
      // deployments, statefulsets, daemonsets, pods, namespaces
      yield* eventually(() => fake.openWatches(), 5, "watching")

      // While disconnected, things change and the server forgets the history: resuming gets 410.
      fake.cutWatches()
      fake.remove("deployments", "shop", "web")
      fake.annotate("statefulsets", "shop", "db", { [DRAINS]: "syslog+tcp://b2:1" })
      fake.create("daemonsets", { name: "agent", namespace: "kube-system", annotations: { [DRAINS]: "syslog+tcp://c:1" } })
      fake.annotate("namespaces", "", "team", { [DRAINS]: null })
      fake.expire()
      yield* eventually(() => routes(table), ["agent.kube-system -> syslog+tcp://c:1", "db.shop -> syslog+tcp://b2:1"], "after relist")
      const text = yield* PrometheusMetrics.format()
      assert.strictEqual(metric(text, "logtrain_kubernetes_lists_total", `resource="deployments"`), 2, text)
    }))

  it.live("read-only when RBAC does not allow patching workloads: writes fail saying why", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("deployments", { name: "web", namespace: "shop" })
      const { writable } = yield* start(fake)
      assert.strictEqual(writable.readOnly, "this service account may not patch deployments, statefulsets, daemonsets")
      const error = yield* Effect.flip(writable.add({ hostname: "web.shop", endpoint: "syslog+tcp://tail:1" }))
      assert.include(error.message, "read-only")
      assert.isFalse(fake.requests.some((r) => r.method === "PATCH"))
    }))

  it.live("writable when RBAC allows: add and remove edit the annotation of the workload with that hostname", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      for (const resource of ["deployments", "statefulsets", "daemonsets"]) fake.allow("patch", resource, true)
      fake.create("deployments", { name: "web", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://a:1" } })
      fake.create("statefulsets", { name: "db", namespace: "shop", annotations: { "logtrain.akkeris.io/hostname": "db.example.com" } })
      const { table, writable } = yield* start(fake)
      assert.isUndefined(writable.readOnly)
      yield* eventually(() => routes(table), ["web.shop -> syslog+tcp://a:1"], "listed")

      yield* writable.add({ hostname: "web.shop", endpoint: "syslog+tcp://tail:1" })
      const annotations = (resource: FakeKubeApi.Resource, name: string) =>
        (fake.get(resource, "shop", name)!.metadata as { annotations?: Record<string, string> }).annotations ?? {}
      assert.strictEqual(annotations("deployments", "web")[DRAINS], "syslog+tcp://a:1;syslog+tcp://tail:1")
      yield* eventually(() => routes(table), ["web.shop -> syslog+tcp://a:1", "web.shop -> syslog+tcp://tail:1"], "added")

      yield* writable.add({ hostname: "db.example.com", endpoint: "syslog+tcp://tail:1" })
      yield* eventually(() => routes(table), [
        "db.example.com -> syslog+tcp://tail:1",
        "web.shop -> syslog+tcp://a:1",
        "web.shop -> syslog+tcp://tail:1"
      ], "added by the hostname annotation")

      yield* writable.remove({ hostname: "web.shop", endpoint: "syslog+tcp://tail:1" })
      yield* writable.remove({ hostname: "db.example.com", endpoint: "syslog+tcp://tail:1" })
      assert.strictEqual(annotations("deployments", "web")[DRAINS], "syslog+tcp://a:1")
      assert.isUndefined(annotations("statefulsets", "db")[DRAINS])
      yield* eventually(() => routes(table), ["web.shop -> syslog+tcp://a:1"], "removed")

      const error = yield* Effect.flip(writable.add({ hostname: "nobody.shop", endpoint: "syslog+tcp://tail:1" }))
      assert.include(error.message, "no deployment, statefulset or daemonset has hostname nobody.shop")

      // Every request made is one the RBAC of deployments/kubernetes grants (Permissions).
      const granted = new Set([...Permissions.read, ...Permissions.write].flatMap((rule) =>
        rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${rule.apiGroup}/${resource}/${verb}`))
      ))
      const used = new Set(fake.requests.map(rbacOf))
      assert.includeMembers([...granted], [...used])
      assert.includeMembers([...used], ["apps/deployments/patch", "apps/deployments/list", "apps/deployments/watch", "authorization.k8s.io/selfsubjectaccessreviews/create"])
    }))

  it.live("a namespace's drains annotation is the default of its workloads without one: added, overridden, removed — routes follow live", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("namespaces", { name: "shop" })
      fake.create("namespaces", { name: "other" })
      fake.create("deployments", { name: "web", namespace: "shop" })
      fake.create("statefulsets", { name: "db", namespace: "shop" })
      fake.create("deployments", { name: "api", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://own:1" } })
      fake.create("deployments", { name: "quiet", namespace: "shop", annotations: { [DRAINS]: "" } })
      fake.create("deployments", { name: "web", namespace: "other" })
      const { readiness, table } = yield* start(fake)
      yield* eventually(() => Effect.runSync(ready(readiness)), true, "ready")
      assert.deepStrictEqual(routes(table), ["api.shop -> syslog+tcp://own:1"])

      // Added: every workload of the namespace without its own annotation (an empty one opts out).
      fake.annotate("namespaces", "", "shop", { [DRAINS]: "syslog+tcp://team:1;https://hooks.example.com/logs" })
      yield* eventually(() => routes(table), [
        "api.shop -> syslog+tcp://own:1",
        "db.shop -> https://hooks.example.com/logs",
        "db.shop -> syslog+tcp://team:1",
        "web.shop -> https://hooks.example.com/logs",
        "web.shop -> syslog+tcp://team:1"
      ], "the default applies")
      // A workload that comes later gets it too; one that gains its own annotation leaves it.
      fake.create("daemonsets", { name: "agent", namespace: "shop" })
      fake.annotate("deployments", "shop", "web", { [DRAINS]: "syslog+tcp://web-own:1" })
      yield* eventually(() => routes(table), [
        "agent.shop -> https://hooks.example.com/logs",
        "agent.shop -> syslog+tcp://team:1",
        "api.shop -> syslog+tcp://own:1",
        "db.shop -> https://hooks.example.com/logs",
        "db.shop -> syslog+tcp://team:1",
        "web.shop -> syslog+tcp://web-own:1"
      ], "overridden")
      // Changed: the workloads that follow it follow.
      fake.annotate("namespaces", "", "shop", { [DRAINS]: "syslog+tcp://team:2" })
      yield* eventually(() => routes(table), [
        "agent.shop -> syslog+tcp://team:2",
        "api.shop -> syslog+tcp://own:1",
        "db.shop -> syslog+tcp://team:2",
        "web.shop -> syslog+tcp://web-own:1"
      ], "changed")
      // The workload's own annotation removed: back to the default.
      fake.annotate("deployments", "shop", "web", { [DRAINS]: null })
      yield* eventually(() => routes(table).filter((r) => r.startsWith("web.")), ["web.shop -> syslog+tcp://team:2"], "back to the default")
      // Removed: only the workloads' own routes are left.
      fake.annotate("namespaces", "", "shop", { [DRAINS]: null })
      yield* eventually(() => routes(table), ["api.shop -> syslog+tcp://own:1"], "removed")
      // A namespace deleted with its default takes it along (and after a relist too).
      fake.annotate("namespaces", "", "other", { [DRAINS]: "syslog+tcp://other:1" })
      yield* eventually(() => routes(table).includes("web.other -> syslog+tcp://other:1"), true, "other's default")
      fake.remove("namespaces", "", "other")
      yield* eventually(() => routes(table), ["api.shop -> syslog+tcp://own:1"], "namespace deleted")
    }))

  it.live("without RBAC to watch namespaces, a warning, and no namespace defaults; the rest works", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.allow("watch", "namespaces", false)
      fake.create("namespaces", { name: "shop", annotations: { [DRAINS]: "syslog+tcp://team:1" } })
      fake.create("deployments", { name: "web", namespace: "shop" })
      fake.create("deployments", { name: "api", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://own:1" } })
      const { logs, readiness, table } = yield* start(fake)
      yield* eventually(() => Effect.runSync(ready(readiness)), true, "ready")
      assert.deepStrictEqual(routes(table), ["api.shop -> syslog+tcp://own:1"])
      assert.isTrue(logs.some((l) => l.includes("may not watch namespaces")))
      assert.isFalse(fake.requests.some((r) => r.path === "/api/v1/namespaces"))
    }))

  it.live("not ready while the API server cannot be reached, and ready once it can", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("deployments", { name: "web", namespace: "shop", annotations: { [DRAINS]: "syslog+tcp://a:1" } })
      fake.refuse(true)
      const { readiness, table } = yield* start(fake)
      yield* eventually(Effect.map(readiness.report, (r) => r.checks.find((c) => c.name === "kubernetes:deployments")?.reason.includes("503") ?? false), true, "list failing")
      assert.isFalse(yield* ready(readiness))
      fake.refuse(false)
      yield* eventually(() => routes(table), ["web.shop -> syslog+tcp://a:1"], "recovered")
      yield* eventually(Effect.map(readiness.report, (r) => r.ready), true, "ready")
    }))
})
