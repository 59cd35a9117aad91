/**
 * The one HTTP server, on HTTP_PORT (9000). It always serves:
 *
 * - `GET /healthz` — 200 while the process runs (liveness).
 * - `GET /readyz`  — 200 once every input listens and every datasource has loaded its routes,
 *   503 otherwise; the body lists each check (readiness).
 * - `GET /metrics` — Prometheus text.
 *
 * Inputs that take HTTP (syslog over HTTP, events) add their own routes; programs pass them in.
 */
import * as NodeHttpPlatform from "@effect/platform-node/NodeHttpPlatform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import { Etag, HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { Readiness } from "../Readiness.ts"

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

export interface Options {
  readonly host: string
  readonly port: number
}

/**
 * Serves the health routes plus `routes`; request logging is off (probes and scrapes would flood it).
 * The server with only the HTTP services it uses: `NodeHttpServer.layer` adds all of Node's platform
 * services, whose child-process spawner and terminal load `child_process` and `readline` at start.
 */
export const layer = <E, R>(options: Options, routes: Layer.Layer<never, E, R>) =>
  HttpRouter.serve(Layer.mergeAll(HealthRoutes, routes), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(Layer.mergeAll(
      NodeHttpServer.layerServer(createServer, { host: options.host, port: options.port }),
      NodeHttpPlatform.layer,
      Etag.layerWeak
    ))
  )
