/**
 * HTTP events (`HTTP_EVENTS`, `POST HTTP_EVENTS_PATH`, /events, on the shared HTTP server): one
 * JSON packet per request, as the original — `{"Hostname","Tag","Message","Severity","Facility",
 * "Time"}`, field names in any case (see JsonPacket). A JSON array of packets is taken too.
 *
 * Answers: 200 `accepted N of M` (with the first reason when some were refused); 400 with the
 * reason when none is usable or the body is not JSON; 413 over HTTP_MAX_BODY_SIZE.
 */
import { Clock, Effect } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import * as JsonPacket from "../../domain/JsonPacket.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { Ingest } from "../Ingest.ts"
import { answer, readBody, summary } from "./HttpBody.ts"
import * as InputStats from "./InputStats.ts"

export interface Options {
  readonly path: HttpRouter.PathInput
  readonly maxBodyBytes: number
}

const INPUT = "http_events"

export const routes = (options: Options) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const ingest = yield* Ingest
    const stats = yield* InputStats.make(INPUT)

    yield* router.add("POST", options.path, Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const body = yield* readBody(request, options.maxBodyBytes)
      stats.bytes += body.length
      let json: unknown
      try {
        json = JSON.parse(body.toString("utf8"))
      } catch (error) {
        stats.malformed++
        return answer(400, `the body is not JSON: ${(error as Error).message}`)
      }
      const items = Array.isArray(json) ? json : [json]
      if (items.length === 0) return answer(400, "the body holds no packet")
      const receivedAt = new Date(yield* Clock.currentTimeMillis)
      const packets: Array<LogPacket> = []
      let refusal: string | undefined
      for (const [i, item] of items.entries()) {
        const packet = JsonPacket.fromJson(item, receivedAt)
        if (JsonPacket.isError(packet)) {
          stats.malformed++
          refusal ??= items.length === 1 ? packet.error : `packet ${i + 1}: ${packet.error}`
        } else {
          packets.push(packet)
        }
      }
      if (packets.length === 0) return answer(400, refusal!)
      stats.records += packets.length
      yield* ingest.offer(packets)
      return answer(200, summary(packets.length, items.length, refusal))
    }).pipe(Effect.catchTag("BadRequest", (error) => Effect.succeed(answer(error.status, error.reason)))))
  }))
