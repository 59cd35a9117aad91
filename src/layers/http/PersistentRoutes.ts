/**
 * `GET {PERSISTENT_PATH}:key` (default `/logs/:key`): the lines stored for a key by
 * `persistent://key` drains, oldest first, as text, streamed. `?lines=N` gives the last N.
 * 404 for a key nothing was stored for.
 */
import { Effect, Option, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PersistentLogs } from "../storage/PersistentLogsService.ts"

const encoder = new TextEncoder()

export const routes = (path: `/${string}`) =>
  HttpRouter.add(
    "GET",
    `${path.endsWith("/") ? path : `${path}/`}:key` as `/${string}`,
    Effect.gen(function*() {
      const store = yield* PersistentLogs
      const { key } = yield* HttpRouter.params
      const request = yield* HttpServerRequest.HttpServerRequest
      const lines = new URL(request.url, "http://localhost").searchParams.get("lines")
      const tail = lines === null ? undefined : Number(lines)
      if (tail !== undefined && !(Number.isInteger(tail) && tail >= 0)) {
        return HttpServerResponse.text("lines must be a whole number\n", { status: 400 })
      }
      if (key === undefined || key === "" || key.length > 128) return HttpServerResponse.text("not found\n", { status: 404 })
      const stored = yield* store.read(decodeURIComponent(key), tail)
      if (Option.isNone(stored)) return HttpServerResponse.text("not found\n", { status: 404 })
      return HttpServerResponse.stream(Stream.map(stored.value, (text) => encoder.encode(text)), {
        contentType: "text/plain; charset=utf-8"
      })
    }).pipe(Effect.catchTag("SqlError", (error) =>
      Effect.succeed(HttpServerResponse.text(`persistent storage unavailable: ${error.reason._tag}\n`, { status: 503 }))))
  )
