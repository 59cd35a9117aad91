/**
 * logtail's HTTP API:
 *
 * - `GET /logs/:app?log_lines=N` — the app's last N lines (default 100), oldest first, one per
 *   line, in Deis's format; 204 for an app with none (deis/logger's API).
 * - `DELETE /logs/:app` — forgets them (200, also for an app with none).
 * - `POST /tails` `{"hostname": "…"}` — a live tail: 201, `{"url": …}` and `Location: <url>`. The
 *   body is read up to 64 KB and refused (413, the connection closed) as soon as it is larger.
 * - `GET` or `POST` on that URL (`/tails/:id`, `?lines=N` to replay the last N first) —
 *   `text/syslog+rfc5424`, a line as each arrives; 404 saying why for an id that is malformed,
 *   unknown, expired or used; 503 when the sessions cannot be reached (Redis away).
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Effect, Layer, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { parseLogLines } from "../../domain/RecentLogs.ts"
import { readBody } from "../inputs/HttpBody.ts"
import * as Telemetry from "../Telemetry.ts"
import { LiveTails } from "../tails/LiveTails.ts"
import { RecentLogs } from "../storage/RecentLogs.ts"
import type { Refusal, TailSessionError } from "../tails/TailSessions.ts"

export interface Options {
  /** `https://<NAME><suffix>` for tail URLs (the original's LOGTAIL_HOST_SUFFIX); else the request's Host. */
  readonly publicBase?: string | undefined
  /** Most bytes a POST /tails body may have. */
  readonly maxBodyBytes?: number | undefined
}

const encoder = new TextEncoder()
const queryOf = (request: HttpServerRequest.HttpServerRequest) => new URL(request.url, "http://localhost").searchParams

const appOf = (params: Readonly<Record<string, string | undefined>>) => {
  const app = params.app
  return app === undefined || app === "" ? undefined : decodeURIComponent(app)
}

const storageFailed = (error: { readonly message: string }) =>
  Effect.succeed(HttpServerResponse.text(`${error.message}\n`, { status: 500 }))

const unavailable = (error: TailSessionError) =>
  Effect.succeed(HttpServerResponse.text(`${error.message}\n`, { status: 503, headers: error.reason === "Full" ? { "retry-after": "60" } : {} }))

/** Why `GET /tails/:id` is a 404, in words. */
const refusals: Record<Refusal, string> = {
  malformed: "the id is malformed",
  unknown: "unknown id",
  expired: "expired: not opened within 5 minutes of its creation",
  used: "already opened (a tail URL is used once)"
}

/**
 * The router's limit on a path parameter: an app name may be a 255-character hostname, percent-encoded
 * in the path up to 9 characters per character (the router's default, 100, answered 404 for longer ones).
 */
export const routerConfig = Layer.succeed(HttpRouter.RouterConfig, { maxParamLength: 255 * 9 })

export const routes = (options: Options = {}) => {
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024
  const readLogs = HttpRouter.add(
    "GET",
    "/logs/:app",
    Effect.gen(function*() {
      const app = appOf(yield* HttpRouter.params)
      if (app === undefined) return HttpServerResponse.empty({ status: 404 })
      const request = yield* HttpServerRequest.HttpServerRequest
      const lines = yield* (yield* RecentLogs).read(app, parseLogLines(queryOf(request).get("log_lines")))
      if (lines === undefined) return HttpServerResponse.empty({ status: 204 })
      return HttpServerResponse.text(lines.map((l) => `${l}\n`).join(""), { contentType: "text/plain; charset=utf-8" })
    }).pipe(Effect.catchTag("StorageError", storageFailed))
  )
  const deleteLogs = HttpRouter.add(
    "DELETE",
    "/logs/:app",
    Effect.gen(function*() {
      const app = appOf(yield* HttpRouter.params)
      if (app === undefined) return HttpServerResponse.empty({ status: 404 })
      yield* (yield* RecentLogs).destroy(app)
      return HttpServerResponse.empty({ status: 200 })
    }).pipe(Effect.catchTag("StorageError", storageFailed))
  )
  const refused = { tooLarge: 0, invalid: 0 }
  const createTail = HttpRouter.add(
    "POST",
    "/tails",
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      // Read under the limit, refused as soon as it is passed: nothing larger is ever held.
      const body = yield* Effect.result(readBody(request, maxBodyBytes))
      if (body._tag === "Failure") {
        if (body.failure.status === 413) refused.tooLarge++
        else refused.invalid++
        // The rest of a large body is not read: the connection is closed after the answer.
        const reason = body.failure.status === 413 ? `the body is larger than ${maxBodyBytes} bytes` : body.failure.reason
        return HttpServerResponse.text(`${reason}\n`, { status: body.failure.status, headers: { connection: "close" } })
      }
      let hostname: unknown
      try {
        hostname = (JSON.parse(body.success.toString("utf8")) as { hostname?: unknown } | null)?.hostname
      } catch {
        refused.invalid++
        return HttpServerResponse.text("invalid body: expected JSON like {\"hostname\": \"app.space\"}\n", { status: 400 })
      }
      if (typeof hostname !== "string" || hostname === "" || hostname.length > 255) {
        refused.invalid++
        return HttpServerResponse.text("invalid body: hostname must be a non-empty string of at most 255 characters\n", { status: 400 })
      }
      const id = yield* (yield* LiveTails).create(hostname)
      const base = options.publicBase ?? `http://${request.headers.host ?? "localhost"}`
      const url = `${base}/tails/${id}`
      return HttpServerResponse.jsonUnsafe({ url }, { status: 201, headers: { location: url } })
    }).pipe(Effect.catchTag("TailSessionError", unavailable))
  )
  const streamTail = Effect.gen(function*() {
    const { id } = yield* HttpRouter.params
    const request = yield* HttpServerRequest.HttpServerRequest
    const lines = queryOf(request).get("lines")
    const replay = lines === null ? 0 : Math.max(0, Math.min(Number.parseInt(lines, 10) || 0, 100_000))
    const tail = yield* (yield* LiveTails).open(id ?? "", replay)
    if ("refused" in tail) return HttpServerResponse.text(`no such tail: ${refusals[tail.refused]}\n`, { status: 404 })
    // Node holds the headers back until the first line; sent at once, they tell the client the
    // tail is open (the stream is read only after the status and headers are set).
    const response = NodeHttpServerRequest.toServerResponse(request)
    const flushHeaders = Stream.drain(Stream.fromEffect(Effect.sync(() => {
      if ("flushHeaders" in response) response.flushHeaders()
    })))
    const body = Stream.concat(flushHeaders, Stream.map(tail.lines, (line) => encoder.encode(line)))
    return HttpServerResponse.stream(body, {
      contentType: "text/syslog+rfc5424; charset=utf-8",
      headers: { "x-content-type-options": "nosniff", "cache-control": "no-cache" }
    })
  }).pipe(Effect.catchTag("TailSessionError", unavailable))
  const metrics = Layer.effectDiscard(Effect.gen(function*() {
    yield* Telemetry.counter("logtail_requests_refused_total", "POST /tails requests refused, by reason.", { reason: "body_too_large" }, () =>
      refused.tooLarge)
    yield* Telemetry.counter("logtail_requests_refused_total", "POST /tails requests refused, by reason.", { reason: "invalid_body" }, () =>
      refused.invalid)
  }))
  return Layer.mergeAll(
    metrics,
    readLogs,
    deleteLogs,
    createTail,
    HttpRouter.add("GET", "/tails/:id", streamTail),
    HttpRouter.add("POST", "/tails/:id", streamTail)
  )
}
