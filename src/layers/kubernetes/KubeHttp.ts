/**
 * The Kubernetes API over plain HTTPS (node:https, one keep-alive agent): the five kinds of request
 * logtrain makes — list (in pages of PAGE_SIZE), watch (a stream of JSON lines), get, a JSON merge patch
 * of annotations, and a SelfSubjectAccessReview. What arrives is trimmed as it is parsed (see
 * domain/Kubernetes), page by page and event by event.
 */
import { Effect, type Scope } from "effect"
import * as Http from "node:http"
import * as Https from "node:https"
import { trim } from "../../domain/Kubernetes.ts"
import { KubeApi, KubeError, listPages, PAGE_SIZE, pathOf, type ResourceType, WATCH_SECONDS } from "./KubeApi.ts"
import type { Direct } from "./KubeConnection.ts"

/** A watch silent this long (no event, no bookmark) is ended and resumed: the connection may be dead. */
const WATCH_IDLE_MS = 90_000
const REQUEST_TIMEOUT_MS = 30_000

interface Reply {
  readonly status: number
  readonly body: string
}

export const make = (connection: Direct): Effect.Effect<KubeApi["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = new URL(connection.server)
    const secure = url.protocol === "https:"
    const agent = secure
      ? new Https.Agent({
        keepAlive: true,
        ca: connection.ca,
        cert: connection.cert,
        key: connection.key,
        rejectUnauthorized: !connection.insecure,
        servername: connection.serverName
      })
      : new Http.Agent({ keepAlive: true })
    yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
    const base = url.pathname.replace(/\/+$/, "")

    const open = (method: string, path: string, body: string | undefined, contentType: string | undefined, signal: AbortSignal) => {
      const headers: Record<string, string> = { accept: "application/json" }
      const authorization = connection.authorization()
      if (authorization !== undefined) headers.authorization = authorization
      if (body !== undefined) {
        headers["content-type"] = contentType ?? "application/json"
        headers["content-length"] = String(Buffer.byteLength(body))
      }
      const options = { method, hostname: url.hostname.replace(/^\[|\]$/g, ""), port: url.port, path: `${base}${path}`, headers, agent, signal }
      return secure ? Https.request(options) : Http.request(options)
    }

    /** One request, its whole answer as text. */
    const send = (what: string, method: string, path: string, body?: string, contentType?: string) =>
      Effect.callback<Reply, KubeError>((resume, signal) => {
        const request = open(method, path, body, contentType, signal)
        request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)))
        request.on("response", (response) => {
          const chunks: Array<Buffer> = []
          response.on("data", (chunk: Buffer) => chunks.push(chunk))
          response.on("end", () => {
            const body = Buffer.concat(chunks).toString("utf8")
            // A keep-alive socket can keep the request, and so these listeners, reachable for as long
            // as it lives (Node's TLS session cache): the chunks must not stay with them.
            chunks.length = 0
            resume(Effect.succeed({ status: response.statusCode ?? 0, body }))
          })
          response.on("error", (error) => resume(Effect.fail(requestFailed(what, error))))
        })
        request.on("error", (error) => resume(Effect.fail(requestFailed(what, error))))
        request.end(body)
      })

    /** A request that must succeed (2xx); its JSON. */
    const json = (what: string, method: string, path: string, body?: string, contentType?: string) =>
      Effect.flatMap(send(what, method, path, body, contentType), (reply) =>
        reply.status >= 200 && reply.status < 300
          ? Effect.try({ try: () => JSON.parse(reply.body) as unknown, catch: () => statusError(what, reply.status, "not JSON") })
          : Effect.fail(statusError(what, reply.status, messageOf(reply.body))))


    return KubeApi.of({
      server: connection.server,
      list: (resource, options) =>
        listPages(resource.kind, (next) =>
          Effect.map(
            json(`list ${resource.plural}`, "GET", `${pathOf(resource)}${query({ limit: PAGE_SIZE, continue: next, fieldSelector: options?.fieldSelector })}`),
            (body) => {
              const page = body as { items?: ReadonlyArray<unknown>; metadata?: { resourceVersion?: string; continue?: string } }
              return { items: page.items ?? [], resourceVersion: page.metadata?.resourceVersion, next: page.metadata?.continue }
            }
          )),
      watch: (resource, options, onEvent) =>
        Effect.callback<void, KubeError>((resume, signal) => {
          const what = `watch ${resource.plural}`
          const path = `${pathOf(resource)}${
            query({
              watch: true,
              resourceVersion: options.resourceVersion,
              allowWatchBookmarks: true,
              timeoutSeconds: WATCH_SECONDS,
              fieldSelector: options.fieldSelector
            })
          }`
          let done = false
          const finish = (effect: Effect.Effect<void, KubeError>) => {
            if (done) return
            done = true
            resume(effect)
          }
          const request = open("GET", path, undefined, undefined, signal)
          // Silent too long: ended here, and resumed by the caller from the last version.
          request.setTimeout(WATCH_IDLE_MS, () => {
            finish(Effect.void)
            request.destroy()
          })
          request.on("response", (response) => {
            const status = response.statusCode ?? 0
            if (status < 200 || status >= 300) {
              const chunks: Array<Buffer> = []
              response.on("data", (chunk: Buffer) => chunks.push(chunk))
              response.on("end", () => finish(Effect.fail(statusError(what, status, messageOf(Buffer.concat(chunks).toString("utf8"))))))
              return
            }
            let buffered = ""
            response.setEncoding("utf8")
            response.on("data", (text: string) => {
              buffered += text
              let newline: number
              while ((newline = buffered.indexOf("\n")) !== -1) {
                if (done) return
                const line = buffered.slice(0, newline)
                buffered = buffered.slice(newline + 1)
                if (line.trim() === "") continue
                let event: { type?: string; object?: { code?: number; message?: string; metadata?: { resourceVersion?: string } } }
                try {
                  event = JSON.parse(line) as typeof event
                } catch {
                  finish(Effect.fail(new KubeError({ reason: "Request", detail: `${what}: a watch event that is not JSON` })))
                  request.destroy()
                  return
                }
                if (event.type === "ERROR") {
                  finish(Effect.fail(statusError(what, event.object?.code ?? 0, event.object?.message ?? "")))
                  request.destroy()
                  return
                }
                const version = event.object?.metadata?.resourceVersion ?? ""
                if (event.type === "BOOKMARK") onEvent({ type: "BOOKMARK", resourceVersion: version })
                else if (event.type === "ADDED" || event.type === "MODIFIED" || event.type === "DELETED") {
                  const trimmed = trim(resource.kind, event.object)
                  if (trimmed !== undefined) onEvent({ type: event.type, object: trimmed, resourceVersion: version })
                }
              }
            })
            response.on("end", () => finish(Effect.void))
            response.on("error", (error) => finish(Effect.fail(requestFailed(what, error))))
            response.on("close", () => finish(Effect.fail(requestFailed(what, new Error("connection closed")))))
          })
          request.on("error", (error) => finish(Effect.fail(requestFailed(what, error))))
          request.end()
          return Effect.sync(() => {
            done = true
            request.destroy()
          })
        }),
      get: (resource, namespace, name) =>
        Effect.gen(function*() {
          const what = `get ${resource.plural} ${namespace}/${name}`
          const reply = yield* send(what, "GET", objectPath(resource, namespace, name))
          if (reply.status === 404) return undefined
          if (reply.status < 200 || reply.status >= 300) return yield* statusError(what, reply.status, messageOf(reply.body))
          return trim(resource.kind, JSON.parse(reply.body))
        }),
      patchAnnotations: (resource, namespace, name, annotations) =>
        Effect.asVoid(
          json(
            `patch ${resource.plural} ${namespace}/${name}`,
            "PATCH",
            objectPath(resource, namespace, name),
            JSON.stringify({ metadata: { annotations } }),
            "application/merge-patch+json"
          )
        ),
      allowed: (verb, resource) =>
        Effect.map(
          json(
            `access review ${verb} ${resource.plural}`,
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            JSON.stringify({
              apiVersion: "authorization.k8s.io/v1",
              kind: "SelfSubjectAccessReview",
              spec: { resourceAttributes: { verb, group: resource.group, resource: resource.plural } }
            })
          ),
          (review) => (review as { status?: { allowed?: boolean } }).status?.allowed === true
        )
    })
  })

const query = (params: Record<string, string | number | boolean | undefined>) => {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) if (value !== undefined) search.set(key, String(value))
  const text = search.toString()
  return text === "" ? "" : `?${text}`
}

const objectPath = (resource: ResourceType, namespace: string, name: string) =>
  `${resource.group === "" ? "/api/v1" : `/apis/${resource.group}/v1`}/namespaces/${encodeURIComponent(namespace)}/${resource.plural}/${
    encodeURIComponent(name)
  }`

const messageOf = (body: string): string => {
  try {
    return String((JSON.parse(body) as { message?: unknown }).message ?? "")
  } catch {
    return body.slice(0, 200)
  }
}

const statusError = (what: string, status: number, message: string) =>
  new KubeError({ reason: status === 410 ? "Expired" : "Status", status, detail: `${what}: ${status} ${message}`.trim() })

const requestFailed = (what: string, error: Error) => {
  const code = (error as { code?: unknown }).code
  return new KubeError({ reason: "Request", detail: `${what}: ${typeof code === "string" && !error.message.includes(code) ? `${code} ` : ""}${error.message}` })
}
