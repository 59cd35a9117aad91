/**
 * A stand-in for the Kubernetes API server — none can run here — speaking the real protocol, so
 * logtrain's real client code runs against it:
 *
 * - Lists: `GET /api/v1/{pods,namespaces}`, `GET /apis/apps/v1/{deployments,statefulsets,daemonsets,replicasets}`
 *   (all namespaces) with `limit`/`continue` pagination, `fieldSelector=spec.nodeName=…` for pods,
 *   and the list's `resourceVersion`.
 * - Watches: the same paths with `watch=true&resourceVersion=N`: a chunked stream of JSON lines
 *   (`{"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":…}`) replaying what
 *   happened after N, then following. BOOKMARK events (with `allowWatchBookmarks=true`) carry the
 *   current resourceVersion. A resourceVersion older than the kept history gets the API server's
 *   answer: an ERROR event with a 410 `Expired` Status, then the end of the stream.
 * - `GET` and merge-`PATCH` (`application/merge-patch+json`) of one namespaced object.
 * - `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`, answered from `allow()`.
 * - HTTPS with the test CA, and every request must carry the bearer token of the kubeconfig it
 *   writes (the client refuses plain HTTP, as it should).
 *
 * Tests drive it: create/update/remove objects, `expire()` (forget history: watches get 410),
 * `cutWatches()` (drop every watch connection), and count requests.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import type * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { certificates } from "./certs.ts"

export type Resource = "pods" | "deployments" | "statefulsets" | "daemonsets" | "replicasets" | "namespaces"

const KINDS: Record<Resource, { readonly kind: string; readonly apiVersion: string; readonly prefix: string }> = {
  pods: { kind: "Pod", apiVersion: "v1", prefix: "/api/v1" },
  deployments: { kind: "Deployment", apiVersion: "apps/v1", prefix: "/apis/apps/v1" },
  statefulsets: { kind: "StatefulSet", apiVersion: "apps/v1", prefix: "/apis/apps/v1" },
  daemonsets: { kind: "DaemonSet", apiVersion: "apps/v1", prefix: "/apis/apps/v1" },
  replicasets: { kind: "ReplicaSet", apiVersion: "apps/v1", prefix: "/apis/apps/v1" },
  namespaces: { kind: "Namespace", apiVersion: "v1", prefix: "/api/v1" }
}

type Json = Record<string, unknown>

export interface ObjectSpec {
  readonly name: string
  readonly namespace?: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
  readonly owner?: { readonly kind: string; readonly name: string }
  readonly nodeName?: string
  /** Extra bulk, as real objects carry (managedFields, status…): logtrain must not keep it. */
  readonly padding?: number
}

interface Event {
  readonly rv: number
  readonly resource: Resource
  readonly type: "ADDED" | "MODIFIED" | "DELETED"
  readonly object: Json
}

export interface FakeKubeApi {
  readonly url: string
  /** A kubeconfig file pointing at this server. */
  readonly kubeconfig: string
  readonly token: string
  create(resource: Resource, spec: ObjectSpec): Json
  update(resource: Resource, namespace: string, name: string, change: (object: Json) => void): void
  /** Sets (a string) or removes (null) annotations of an object, as `kubectl annotate` would. */
  annotate(resource: Resource, namespace: string, name: string, annotations: Record<string, string | null>): void
  remove(resource: Resource, namespace: string, name: string): void
  get(resource: Resource, namespace: string, name: string): Json | undefined
  /** What SelfSubjectAccessReviews answer for `verb` on `resource` (default: get/list/watch yes, others no). */
  allow(verb: string, resource: string, allowed: boolean): void
  /** While on, every request gets 503 (an API server that is down or overloaded). */
  refuse(on: boolean): void
  /** Forgets all history: open watches get 410 Expired, and so does resuming from any older version. */
  expire(): void
  /** Drops every open watch connection, as a load balancer or an API server restart would. */
  cutWatches(): void
  readonly openWatches: () => number
  readonly requests: Array<{ readonly method: string; readonly path: string; readonly watch: boolean }>
  stop(): Promise<void>
}

export const listen = async (options: { readonly bookmarkIntervalMs?: number } = {}): Promise<FakeKubeApi> => {
  const token = "fake-token-for-logtrain-tests"
  const objects = new Map<Resource, Map<string, Json>>(Object.keys(KINDS).map((r) => [r as Resource, new Map()]))
  const history: Array<Event> = []
  let rv = 100
  let compactedBefore = 0
  let uid = 0
  let refusing = false
  const permissions = new Map<string, boolean>()
  const watches = new Set<{ readonly resource: Resource; readonly nodeName: string | undefined; readonly res: Http.ServerResponse; after: number }>()
  const requests: FakeKubeApi["requests"] = []

  const matches = (object: Json, nodeName: string | undefined) =>
    nodeName === undefined || (object.spec as Json | undefined)?.nodeName === nodeName

  const send = (res: Http.ServerResponse, type: string, object: Json) => res.write(`${JSON.stringify({ type, object })}\n`)

  const record = (resource: Resource, type: Event["type"], object: Json) => {
    const event: Event = { rv, resource, type, object }
    history.push(event)
    for (const watch of watches) {
      if (watch.resource === resource && matches(object, watch.nodeName)) {
        send(watch.res, type, object)
        watch.after = event.rv
      }
    }
  }

  const expired = (res: Http.ServerResponse, version: number) => {
    send(res, "ERROR", {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `too old resource version: ${version} (${rv})`,
      reason: "Expired",
      code: 410
    })
    res.end()
  }

  const bookmarks = setInterval(() => {
    for (const watch of watches) {
      send(watch.res, "BOOKMARK", { kind: KINDS[watch.resource].kind, apiVersion: KINDS[watch.resource].apiVersion, metadata: { resourceVersion: String(rv) } })
    }
  }, options.bookmarkIntervalMs ?? 1000)

  const handler: Http.RequestListener = (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost")
    requests.push({ method: req.method ?? "", path: url.pathname, watch: url.searchParams.get("watch") === "true" })
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" })
      res.end(JSON.stringify(body))
    }
    if (refusing) return json(503, { kind: "Status", code: 503, reason: "ServiceUnavailable", message: "the server is currently unable to handle the request" })
    if (req.headers.authorization !== `Bearer ${token}`) return json(401, { kind: "Status", code: 401, message: "Unauthorized" })

    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8")
      if (req.method === "POST" && url.pathname === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") {
        const review = JSON.parse(body) as { spec: { resourceAttributes: { verb: string; resource: string } } }
        const { resource, verb } = review.spec.resourceAttributes
        const allowed = permissions.get(`${verb} ${resource}`) ?? ["get", "list", "watch"].includes(verb)
        return json(201, { ...review, status: { allowed } })
      }
      const all = /^\/(?:api\/v1|apis\/apps\/v1)\/(pods|deployments|statefulsets|daemonsets|replicasets|namespaces)$/.exec(url.pathname)
      const one = /^\/(?:api\/v1|apis\/apps\/v1)\/namespaces\/([^/]+)\/(pods|deployments|statefulsets|daemonsets|replicasets)\/([^/]+)$/.exec(url.pathname)
      if (all !== null && req.method === "GET") {
        const resource = all[1] as Resource
        const selector = url.searchParams.get("fieldSelector")
        const nodeName = selector?.startsWith("spec.nodeName=") ? selector.slice("spec.nodeName=".length) : undefined
        if (url.searchParams.get("watch") === "true") {
          const from = Number(url.searchParams.get("resourceVersion") ?? rv)
          res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" })
          if (from < compactedBefore) return expired(res, from)
          const watch = { resource, nodeName, res, after: from }
          for (const event of history) {
            if (event.rv > from && event.resource === resource && matches(event.object, nodeName)) send(res, event.type, event.object)
          }
          watches.add(watch)
          res.on("close", () => watches.delete(watch))
          const timeout = Number(url.searchParams.get("timeoutSeconds") ?? 0)
          if (timeout > 0) setTimeout(() => res.end(), timeout * 1000)
          return
        }
        const items = [...objects.get(resource)!.values()].filter((o) => matches(o, nodeName))
        const limit = Number(url.searchParams.get("limit") ?? 0) || items.length
        const offset = Number(url.searchParams.get("continue") ?? 0)
        const page = items.slice(offset, offset + limit)
        const next = offset + limit < items.length ? String(offset + limit) : undefined
        return json(200, {
          kind: `${KINDS[resource].kind}List`,
          apiVersion: KINDS[resource].apiVersion,
          metadata: { resourceVersion: String(rv), ...(next === undefined ? {} : { continue: next }) },
          items: page
        })
      }
      if (one !== null) {
        const [, namespace, resource, name] = one as unknown as [string, string, Resource, string]
        const key = `${namespace}/${name}`
        const object = objects.get(resource)!.get(key)
        if (object === undefined) return json(404, { kind: "Status", code: 404, reason: "NotFound", message: `${resource} "${name}" not found` })
        if (req.method === "GET") return json(200, object)
        if (req.method === "PATCH") {
          if (req.headers["content-type"] !== "application/merge-patch+json") return json(415, { kind: "Status", code: 415, message: `unsupported ${req.headers["content-type"]}` })
          if (permissions.get(`patch ${resource}`) !== true) return json(403, { kind: "Status", code: 403, reason: "Forbidden", message: "patch is forbidden" })
          const patch = JSON.parse(body) as { metadata?: { annotations?: Record<string, string | null> } }
          const metadata = object.metadata as Json
          const annotations = { ...(metadata.annotations as Record<string, string> | undefined) }
          for (const [k, v] of Object.entries(patch.metadata?.annotations ?? {})) {
            if (v === null) delete annotations[k]
            else annotations[k] = v
          }
          metadata.annotations = annotations
          metadata.resourceVersion = String(++rv)
          record(resource, "MODIFIED", structuredClone(object))
          return json(200, object)
        }
      }
      json(404, { kind: "Status", code: 404, message: `no route for ${req.method} ${url.pathname}` })
    })
  }

  const certs = certificates()
  const server = Https.createServer({ cert: certs.serverCert, key: certs.serverKey }, handler)
  // Every socket, including those still in their TLS handshake (the HTTP server does not track
  // those), so that stopping closes them all rather than serving a watch that starts late.
  const sockets = new Set<Net.Socket>()
  server.on("connection", (socket: Net.Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  const port = (server.address() as Net.AddressInfo).port
  const dir = mkdtempSync(join(tmpdir(), "logtrain-kube-"))
  const kubeconfig = join(dir, "kubeconfig")
  writeFileSync(kubeconfig, [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- cluster:",
    `    server: "https://127.0.0.1:${port}"`,
    `    certificate-authority-data: ${Buffer.from(certs.ca).toString("base64")}`,
    "  name: fake",
    "contexts:",
    "- context: {cluster: fake, user: fake}",
    "  name: fake",
    "current-context: fake",
    "users:",
    `- name: fake`,
    `  user: {token: ${token}}`,
    ""
  ].join("\n"))

  /** Objects by namespace and name; namespaces (cluster-scoped) by name, whatever namespace is given. */
  const keyOf = (resource: Resource, namespace: string, name: string) => (resource === "namespaces" ? name : `${namespace}/${name}`)

  const build = (resource: Resource, spec: ObjectSpec): Json => ({
    kind: KINDS[resource].kind,
    apiVersion: KINDS[resource].apiVersion,
    metadata: {
      name: spec.name,
      // Namespaces are cluster-scoped: they are in none.
      ...(resource === "namespaces" ? {} : { namespace: spec.namespace ?? "default" }),
      uid: `uid-${++uid}`,
      resourceVersion: String(++rv),
      labels: { "app.kubernetes.io/name": spec.name, ...spec.labels },
      annotations: { ...spec.annotations },
      ...(spec.owner ? { ownerReferences: [{ apiVersion: "apps/v1", kind: spec.owner.kind, name: spec.owner.name, uid: `owner-${spec.owner.name}`, controller: true }] } : {}),
      managedFields: spec.padding ? [{ manager: "kube-controller-manager", fieldsV1: { padding: "x".repeat(spec.padding) } }] : []
    },
    spec: { ...(spec.nodeName ? { nodeName: spec.nodeName } : {}), template: { spec: { containers: [{ name: spec.name, image: "registry/app:1" }] } } },
    status: { replicas: 1 }
  })

  const api: FakeKubeApi = {
    url: `https://127.0.0.1:${port}`,
    kubeconfig,
    token,
    requests,
    openWatches: () => watches.size,
    create: (resource, spec) => {
      const object = build(resource, spec)
      objects.get(resource)!.set(keyOf(resource, spec.namespace ?? "default", spec.name), object)
      record(resource, "ADDED", structuredClone(object))
      return object
    },
    update: (resource, namespace, name, change) => {
      const object = objects.get(resource)!.get(keyOf(resource, namespace, name))
      if (object === undefined) throw new Error(`no ${resource} ${namespace}/${name}`)
      change(object)
      ;(object.metadata as Json).resourceVersion = String(++rv)
      record(resource, "MODIFIED", structuredClone(object))
    },
    annotate: (resource, namespace, name, annotations) => {
      api.update(resource, namespace, name, (object) => {
        const metadata = object.metadata as Json
        const current = { ...(metadata.annotations as Record<string, string> | undefined) }
        for (const [key, value] of Object.entries(annotations)) {
          if (value === null) delete current[key]
          else current[key] = value
        }
        metadata.annotations = current
      })
    },
    remove: (resource, namespace, name) => {
      const key = keyOf(resource, namespace, name)
      const object = objects.get(resource)!.get(key)
      if (object === undefined) return
      objects.get(resource)!.delete(key)
      ;(object.metadata as Json).resourceVersion = String(++rv)
      record(resource, "DELETED", object)
    },
    get: (resource, namespace, name) => objects.get(resource)!.get(keyOf(resource, namespace, name)),
    allow: (verb, resource, allowed) => {
      permissions.set(`${verb} ${resource}`, allowed)
    },
    refuse: (on) => {
      refusing = on
    },
    expire: () => {
      history.length = 0
      compactedBefore = ++rv
      for (const watch of watches) {
        watches.delete(watch)
        expired(watch.res, watch.after)
      }
    },
    cutWatches: () => {
      for (const watch of watches) {
        watches.delete(watch)
        watch.res.destroy()
      }
    },
    stop: () =>
      new Promise((resolve) => {
        clearInterval(bookmarks)
        for (const watch of watches) watch.res.destroy()
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      })
  }
  return api
}
