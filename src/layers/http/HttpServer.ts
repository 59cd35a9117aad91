/**
 * The one HTTP server, on HTTP_PORT (9000). It always serves:
 *
 * - `GET /healthz` — 200 while the process runs (liveness).
 * - `GET /readyz`  — 200 once every input listens and every datasource has loaded its routes,
 *   503 otherwise; the body lists each check (readiness).
 * - `GET /metrics` — Prometheus text.
 *
 * Inputs that take HTTP (syslog over HTTP, events) add their own routes; programs pass them in.
 *
 * Whatever a client does, what it can hold is bounded (`limitsConfig`): connections, the time to
 * send the headers, the time to send the whole request; request bodies are read under a size
 * limit as they arrive, and all of them at once under a memory budget (RequestBody.ts). Each
 * limit is counted when it bites
 * (`logtrain_input_limited_total{input="http",reason}`) and reported in a warning at most every
 * 10 s. Any route on this server — an input, logtail's API — gets the same.
 */
import * as NodeHttpPlatform from "@effect/platform-node/NodeHttpPlatform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Config, Duration, Effect, Layer, Schedule } from "effect"
import { Etag, HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer, type IncomingMessage } from "node:http"
import type * as Net from "node:net"
import { atLeast, duration } from "../ConfigValues.ts"
import * as Log from "../Log.ts"
import { Readiness } from "../Readiness.ts"
import * as Telemetry from "../Telemetry.ts"
import { BodyBudget } from "./RequestBody.ts"

export const HealthRoutes = Layer.mergeAll(
  HttpRouter.add("GET", "/healthz", HttpServerResponse.text("ok\n")),
  HttpRouter.add(
    "GET",
    "/readyz",
    Effect.gen(function*() {
      const report = yield* (yield* Readiness).report
      return HttpServerResponse.jsonUnsafe(report, { status: report.ready ? 200 : 503 })
    })
  ),
  PrometheusMetrics.layerHttp({ path: "/metrics" })
)

/** What the server allows its clients; 0 (or a zero duration) is no limit. */
export interface Limits {
  /** Connections open at once; one more is closed as soon as it is accepted. */
  readonly maxConnections: number
  /** How long a client may take to send a request's headers. */
  readonly headersTimeout: Duration.Duration
  /** How long a client may take to send a whole request, body included. */
  readonly requestTimeout: Duration.Duration
  /** Bytes of request bodies held at once, all requests together (see RequestBody.ts). */
  readonly maxBodyMemory: number
}

/**
 * The server's limits from the environment. Node's defaults (no connection limit, 60 s for the
 * headers, 300 s for a request, checked every 30 s) let a few hundred stalled clients hold their
 * connections and half-read bodies for minutes; these hold them for seconds.
 */
export const limitsConfig: Config.Config<Limits> = Config.all({
  maxConnections: Config.withDefault(atLeast("HTTP_MAX_CONNECTIONS", 1), 256),
  headersTimeout: Config.withDefault(duration("HTTP_HEADERS_TIMEOUT"), Duration.seconds(10)),
  requestTimeout: Config.withDefault(duration("HTTP_REQUEST_TIMEOUT"), Duration.seconds(30)),
  maxBodyMemory: Config.withDefault(atLeast("HTTP_MAX_BODY_MEMORY", 1024), 8 * 1024 * 1024)
})

export interface Options {
  readonly host: string
  readonly port: number
  /** Read from the environment (`limitsConfig`) when not given. */
  readonly limits?: Limits | undefined
}

const INPUT = "http"
const REASONS = ["connection_limit", "headers_timeout", "request_timeout"] as const
type Reason = typeof REASONS[number]
const ALL_REASONS = [...REASONS, "body_memory_wait"] as const

const millis = (d: Duration.Duration) => {
  const ms = Duration.toMillis(d)
  return Number.isFinite(ms) && ms > 0 ? Math.round(ms) : 0
}

/** What Node answers a client error with when nobody listens for them (see `clientError`). */
const ANSWERS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: "408 Request Timeout",
  HPE_HEADER_OVERFLOW: "431 Request Header Fields Too Large",
  HPE_CHUNK_EXTENSIONS_OVERFLOW: "413 Payload Too Large"
}

/**
 * A Node HTTP server held to `limits`, counting in `counts` what each limit refused or cut. Node
 * checks its timeouts every `connectionsCheckingInterval`: once a second, not every 30 s.
 */
const makeServer = (limits: Limits, counts: Record<Reason, number>, connections: { open: number }) => () => {
  const requestTimeout = millis(limits.requestTimeout)
  const headersTimeout = millis(limits.headersTimeout)
  const server = createServer({
    requestTimeout,
    // Node refuses a headers timeout longer than the request's.
    headersTimeout: requestTimeout === 0 ? headersTimeout : Math.min(headersTimeout || requestTimeout, requestTimeout),
    connectionsCheckingInterval: 1000
  })
  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections
  server.on("drop", () => counts.connection_limit++)
  server.on("connection", (socket: Net.Socket) => {
    connections.open++
    socket.once("close", () => connections.open--)
  })
  // The request being received on each connection: a timeout before its headers are complete is
  // the headers', after, the whole request's.
  const current = new WeakMap<Net.Socket, IncomingMessage>()
  server.on("request", (request: IncomingMessage) => current.set(request.socket, request))
  // Listening for client errors replaces Node's own answer to them, so it is given here as Node
  // gives it (400, or 408, 431, 413), after counting the timeouts.
  server.on("clientError", (error: Error & { code?: string }, socket: Net.Socket) => {
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      const request = current.get(socket)
      counts[request !== undefined && !request.complete ? "request_timeout" : "headers_timeout"]++
    }
    if (socket.writable) {
      const status = ANSWERS[error.code ?? ""] ?? "400 Bad Request"
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    }
    socket.destroy()
  })
  return server
}

/**
 * Serves the health routes plus `routes`; request logging is off (probes and scrapes would flood it).
 * Routes get the server's body budget (RequestBody.BodyBudget). The server with only the HTTP
 * services it uses: `NodeHttpServer.layer` adds all of Node's platform services, whose
 * child-process spawner and terminal load `child_process` and `readline` at start.
 */
export const layer = <E, R>(options: Options, routes: Layer.Layer<never, E, R>) =>
  Layer.unwrap(Effect.gen(function*() {
    const limits = options.limits ?? (yield* limitsConfig)
    const counts: Record<Reason, number> = { connection_limit: 0, headers_timeout: 0, request_timeout: 0 }
    const connections = { open: 0 }
    const budget = BodyBudget.layer(limits.maxBodyMemory)
    const metrics = Layer.effectDiscard(Effect.gen(function*() {
      const { waits } = yield* BodyBudget
      const count = (reason: typeof ALL_REASONS[number]) => reason === "body_memory_wait" ? waits() : counts[reason]
      yield* Telemetry.gauge("logtrain_input_connections", "Open connections.", { input: INPUT }, () => connections.open)
      for (const reason of ALL_REASONS) {
        yield* Telemetry.counter(
          "logtrain_input_limited_total",
          "Connections or requests refused or closed because a limit bit.",
          { input: INPUT, reason },
          () => count(reason)
        )
      }
      const seen = new Map(ALL_REASONS.map((reason) => [reason, 0]))
      yield* Effect.suspend(() => {
        const bitten = ALL_REASONS.filter((reason) => count(reason) > seen.get(reason)!)
          .map((reason) => `${reason}=${count(reason) - seen.get(reason)!}`)
        for (const reason of ALL_REASONS) seen.set(reason, count(reason))
        return bitten.length === 0 ? Effect.void : Log.warn("HTTP clients held to limits", { limited: bitten.join(" ") })
      }).pipe(Effect.repeat(Schedule.spaced(Duration.seconds(10))), Effect.forkScoped)
    }))
    return HttpRouter.serve(Layer.mergeAll(HealthRoutes, routes), { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(Layer.mergeAll(
        NodeHttpServer.layerServer(makeServer(limits, counts, connections), { host: options.host, port: options.port }),
        NodeHttpPlatform.layer,
        Etag.layerWeak
      )),
      Layer.merge(metrics),
      Layer.provide(budget)
    )
  }))
