/**
 * Syslog over HTTP (`HTTP_SYSLOG`, `POST HTTP_SYSLOG_PATH`, /syslog, on the shared HTTP server).
 *
 * The body holds syslog lines (RFC 5424 or 3164), newline-separated, or — with `Content-Type:
 * application/logplex-1` — Heroku logplex frames (octet-counted). Either way each frame's framing
 * is detected as on TCP. For logplex, `Logplex-Msg-Count` must match the frames in the body (a
 * mismatch means a cut body: 400, nothing taken, so the sender's retry brings it whole), and a
 * `Logplex-Frame-Id` already accepted (a retry of a batch that got through) is answered 200 and
 * ignored. The last 10,000 frame ids are remembered.
 *
 * Answers: 200 `accepted N of M` (with the first reason when some lines were refused — one bad
 * line does not lose the good ones); 400 when no line is usable; 413 over HTTP_MAX_BODY_SIZE.
 * The answer waits until the packets are queued, so a saturated logtrain slows its senders.
 */
import { Clock, Effect, Option } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { FrameDecoder } from "../../domain/syslog/Framing.ts"
import { Ingest } from "../routing/Ingest.ts"
import { answer, summary, withBody } from "./HttpBody.ts"
import * as InputStats from "./InputStats.ts"

export interface Options {
  readonly path: HttpRouter.PathInput
  readonly maxBodyBytes: number
  readonly maxMessageBytes: number
}

const INPUT = "http_syslog"
const REMEMBERED_FRAMES = 10_000

export const routes = (options: Options) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const ingest = yield* Ingest
    const stats = yield* InputStats.make(INPUT, ["body_too_large"])
    /** Frame ids accepted, oldest first (a Map keeps insertion order). */
    const frames = new Map<string, true>()

    yield* router.add("POST", options.path, Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const receivedAt = new Date(yield* Clock.currentTimeMillis)
      return yield* withBody(request, options.maxBodyBytes, stats, (body) => {
        stats.bytes += body.length
        const logplex = (request.headers["content-type"] ?? "").toLowerCase().startsWith("application/logplex-1")
        const frameId = logplex ? request.headers["logplex-frame-id"] : undefined
        if (frameId !== undefined && frames.has(frameId)) {
          return Effect.succeed(answer(200, `frame ${frameId} was already accepted; ignored`))
        }

        const decoder = new FrameDecoder({ maxFrameBytes: options.maxMessageBytes })
        const lines = [...decoder.decode(body), ...decoder.end()]
        stats.truncated += decoder.truncated
        const declared = logplex ? request.headers["logplex-msg-count"] : undefined
        if (declared !== undefined && Number(declared) !== lines.length) {
          return Effect.succeed(answer(400, `Logplex-Msg-Count is ${declared} but the body holds ${lines.length} frames`))
        }
        if (lines.length === 0) return Effect.succeed(answer(400, "the body holds no syslog lines"))

        const packets: Array<LogPacket> = []
        const malformedBefore = stats.malformed
        InputStats.parseLines(lines, receivedAt, Option.getOrElse(request.remoteAddress, () => ""), stats, packets)
        const refusal = stats.malformed > malformedBefore ? stats.lastMalformed?.message : undefined
        if (packets.length === 0) return Effect.succeed(answer(400, `no syslog line accepted: ${refusal}`))
        return ingest.offer(packets).pipe(Effect.map(() => {
          if (frameId !== undefined) {
            frames.set(frameId, true)
            if (frames.size > REMEMBERED_FRAMES) frames.delete(frames.keys().next().value!)
          }
          return answer(200, summary(packets.length, lines.length, refusal))
        }))
      })
    }).pipe(Effect.catchTag("BadRequest", (error) => Effect.succeed(answer(error.status, error.reason)))))
  }))
