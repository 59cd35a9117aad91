/**
 * HTTP events (`HTTP_EVENTS`, `POST HTTP_EVENTS_PATH`, /events, on the shared HTTP server): one
 * JSON packet per request, as the original — `{"Hostname","Tag","Message","Severity","Facility",
 * "Time"}`, field names in any case (see JsonPacket). A JSON array of packets is taken too. A
 * Time outside years 0000–9999 is replaced by the time of receipt and counted
 * (`logtrain_input_errors_total{reason="time_out_of_range"}`).
 *
 * Answers: 200 `accepted N of M` (with the first reason when some were refused); 400 with the
 * reason when none is usable or the body is not JSON; 413 over HTTP_MAX_BODY_SIZE.
 */
import { Clock, Effect } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import * as JsonPacket from "../../domain/JsonPacket.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { Ingest } from "../routing/Ingest.ts"
import { answer, summary, withBody } from "./HttpBody.ts"
import * as InputStats from "./InputStats.ts"

export interface Options {
  readonly path: HttpRouter.PathInput
  readonly maxBodyBytes: number
}

const INPUT = "http_events"

export const routes = (options: Options) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const ingest = yield* Ingest
    const stats = yield* InputStats.make(INPUT, ["body_too_large"])

    yield* router.add("POST", options.path, Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const receivedAt = new Date(yield* Clock.currentTimeMillis)
      return yield* withBody(request, options.maxBodyBytes, stats, (body) => {
        stats.bytes += body.length
        let json: unknown
        try {
          json = JSON.parse(body.toString("utf8"))
        } catch (error) {
          stats.malformed++
          return Effect.succeed(answer(400, `the body is not JSON: ${(error as Error).message}`))
        }
        const items = Array.isArray(json) ? json : [json]
        if (items.length === 0) return Effect.succeed(answer(400, "the body holds no packet"))
        const packets: Array<LogPacket> = []
        let refusal: string | undefined
        for (const [i, item] of items.entries()) {
          const packet = JsonPacket.fromJson(item, receivedAt, () => stats.timeReplaced++)
          if (JsonPacket.isError(packet)) {
            stats.malformed++
            refusal ??= items.length === 1 ? packet.error : `packet ${i + 1}: ${packet.error}`
          } else {
            packets.push(packet)
          }
        }
        if (packets.length === 0) return Effect.succeed(answer(400, refusal!))
        stats.records += packets.length
        return ingest.offer(packets).pipe(Effect.as(answer(200, summary(packets.length, items.length, refusal))))
      })
    }).pipe(Effect.catchTag("BadRequest", (error) => Effect.succeed(answer(error.status, error.reason)))))
  }))
