/**
 * OTLP/HTTP logs (`OTLP=true`, `POST /v1/logs` on the shared HTTP server): apps and collectors
 * that speak OpenTelemetry send to their node's logtrain. Protobuf (`application/x-protobuf`) and
 * JSON (`application/json`) bodies, plain or gzipped; how records become packets (hostname, tag,
 * severity…) is in domain/otlp/Request.ts.
 *
 * Answers, as the OTLP spec says, in the request's encoding:
 * - 200 with an `ExportLogsServiceResponse`; when some records were refused (a broken record), a
 *   partial success saying how many and why (senders must not retry it); when messages were cut at
 *   SYSLOG_MAX_MESSAGE_SIZE, a partial success with 0 rejected and a warning;
 * - 400 with a `google.rpc.Status` for a body that is not an OTLP logs request (nothing of it taken);
 * - 413 for a body over OTLP_MAX_BODY_SIZE, as sent or once decompressed;
 * - 415 for another content type or encoding;
 * - 503 with `Retry-After` when logtrain cannot take anything for a second (its queue to the
 *   router stays full): senders back off and retry. Once part of a request is queued, the rest
 *   waits for room rather than be refused (a retry would duplicate what was taken), so a saturated
 *   logtrain slows its senders as TCP ones.
 */
import { Clock, Duration, Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Buffer } from "node:buffer"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as Answers from "../../domain/otlp/Answers.ts"
import * as Request from "../../domain/otlp/Request.ts"
import * as RequestJson from "../../domain/otlp/RequestJson.ts"
import { Ingest } from "../routing/Ingest.ts"
import * as Telemetry from "../Telemetry.ts"
import { withBody } from "./HttpBody.ts"
import * as InputStats from "./InputStats.ts"

export interface Options {
  readonly path: HttpRouter.PathInput
  /** The largest body taken, as sent and once decompressed (OTLP_MAX_BODY_SIZE). */
  readonly maxBodyBytes: number
  readonly maxMessageBytes: number
  readonly akkeris: boolean
}

export const INPUT = "otlp"
export const PATH = "/v1/logs"

/** How long a request waits for the router's queue to take anything before it is answered 503. */
const SATURATED_AFTER = Duration.seconds(1)
const POLL = Duration.millis(20)

/** google.rpc.Code values the answers carry (the spec does not use them; collectors log them). */
const Code = { InvalidArgument: 3, ResourceExhausted: 8, Unavailable: 14, Unimplemented: 12 } as const

const encodingOf = (contentType: string): Answers.Encoding | undefined => {
  const type = contentType.split(";")[0]!.trim().toLowerCase()
  return type === "application/x-protobuf" ? "protobuf" : type === "application/json" ? "json" : undefined
}

const respond = (encoding: Answers.Encoding, status: number, body: Uint8Array | string, headers: Record<string, string> = {}) =>
  typeof body === "string"
    ? HttpServerResponse.text(body, { status, contentType: Answers.contentTypes[encoding], headers })
    : HttpServerResponse.uint8Array(body, { status, contentType: Answers.contentTypes[encoding], headers })

const failure = (encoding: Answers.Encoding, status: number, code: number, message: string, headers: Record<string, string> = {}) =>
  respond(encoding, status, Answers.encodeStatus(encoding, code, message), headers)

class TooLarge extends Error {}

/** A gzipped body, decompressed on libuv's pool, never beyond `max` bytes. */
const gunzipBounded = (body: Uint8Array, max: number) =>
  Effect.callback<Buffer, TooLarge | Error>((resume) => {
    // Loaded on first use, as in drains/Compress.ts.
    process.getBuiltinModule("node:zlib").gunzip(body, { maxOutputLength: max }, (error, result) => {
      if (error === null) return resume(Effect.succeed(result))
      const tooLarge = (error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" || error instanceof RangeError
      resume(Effect.fail(tooLarge ? new TooLarge() : error))
    })
  })

export const routes = (options: Options) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const ingest = yield* Ingest
    const stats = yield* InputStats.make(INPUT)
    let throttled = 0
    yield* Telemetry.counter(
      "logtrain_input_throttled_total",
      "Requests answered 503 because logtrain could not take their packets (the sender retries).",
      { input: INPUT },
      () => throttled
    )
    const tooLarge = `the body is larger than ${options.maxBodyBytes} bytes (OTLP_MAX_BODY_SIZE)`

    /** Queues the packets; false when nothing could be queued for SATURATED_AFTER. */
    const enqueue = Effect.fnUntraced(function*(packets: ReadonlyArray<LogPacket>) {
      let left = ingest.offerOrDrop(packets)
      const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(SATURATED_AFTER)
      while (left === packets.length && packets.length > 0) {
        if ((yield* Clock.currentTimeMillis) >= deadline) return false
        yield* Effect.sleep(POLL)
        left = ingest.offerOrDrop(packets)
      }
      if (left > 0) yield* ingest.offer(packets.slice(packets.length - left))
      return true
    })

    /** What a request's body (read, within the budget) comes to: decoded, queued, answered. */
    const handle = Effect.fnUntraced(function*(
      raw: Buffer,
      encoding: Answers.Encoding,
      contentEncoding: string,
      request: HttpServerRequest.HttpServerRequest
    ) {
      stats.bytes += raw.length
      let body: Uint8Array = raw
      if (contentEncoding === "gzip") {
        const inflated = yield* Effect.result(gunzipBounded(body, options.maxBodyBytes))
        if (inflated._tag === "Failure") {
          if (inflated.failure instanceof TooLarge) return failure(encoding, 413, Code.ResourceExhausted, `${tooLarge}, once decompressed`)
          stats.malformed++
          stats.lastMalformed = { message: `an OTLP body that is not gzip: ${inflated.failure.message}` }
          return failure(encoding, 400, Code.InvalidArgument, `the body is not gzip: ${inflated.failure.message}`)
        }
        body = inflated.success
      }

      const decodeOptions: Request.DecodeOptions = {
        receivedAt: new Date(yield* Clock.currentTimeMillis),
        akkeris: options.akkeris,
        fallbackHostname: request.remoteAddress._tag === "Some" ? request.remoteAddress.value : "",
        maxMessageBytes: options.maxMessageBytes
      }
      let decoded: Request.Decoded
      try {
        decoded = encoding === "protobuf"
          ? Request.decodeProtobuf(body, decodeOptions)
          : RequestJson.decodeJson(JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.length).toString("utf8")), decodeOptions)
      } catch (error) {
        if (!(error instanceof Request.OtlpDecodeError) && !(error instanceof SyntaxError)) throw error
        const message = error instanceof SyntaxError ? `not an OTLP logs request (JSON): ${error.message}` : error.message
        stats.malformed++
        stats.lastMalformed = { message }
        return failure(encoding, 400, Code.InvalidArgument, message)
      }

      if (!(yield* enqueue(decoded.packets))) {
        throttled++
        return failure(encoding, 503, Code.Unavailable, "logtrain is saturated; retry later", { "retry-after": "1" })
      }
      stats.records += decoded.packets.length
      stats.truncated += decoded.truncated
      if (decoded.rejected > 0) {
        stats.malformed += decoded.rejected
        stats.lastMalformed = { message: decoded.firstRejection! }
      }
      const notes = [
        decoded.rejected > 0 ? `${decoded.rejected} of ${decoded.total} log records rejected; the first: ${decoded.firstRejection}` : "",
        decoded.truncated > 0 ? `${decoded.truncated} messages cut at ${options.maxMessageBytes} bytes (SYSLOG_MAX_MESSAGE_SIZE)` : ""
      ].filter((note) => note !== "")
      return respond(
        encoding,
        200,
        Answers.encodeResponse(encoding, notes.length === 0 ? undefined : { rejected: decoded.rejected, message: notes.join("; ") })
      )
    })

    yield* router.add("POST", options.path, Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const encoding = encodingOf(request.headers["content-type"] ?? "")
      if (encoding === undefined) {
        return failure("protobuf", 415, Code.InvalidArgument, "Content-Type must be application/x-protobuf or application/json")
      }
      const contentEncoding = (request.headers["content-encoding"] ?? "identity").trim().toLowerCase()
      if (contentEncoding !== "gzip" && contentEncoding !== "identity" && contentEncoding !== "") {
        return failure(encoding, 415, Code.Unimplemented, `Content-Encoding ${contentEncoding.slice(0, 32)} is not supported (gzip is)`)
      }
      // Held within HTTP_MAX_BODY_MEMORY with the other HTTP inputs' bodies, until queued.
      const handled = yield* withBody(request, options.maxBodyBytes, stats, (raw) => handle(raw, encoding, contentEncoding, request)).pipe(Effect.result)
      if (handled._tag === "Success") return handled.success
      if (handled.failure.status === 413) return failure(encoding, 413, Code.ResourceExhausted, tooLarge)
      return failure(encoding, handled.failure.status, Code.InvalidArgument, handled.failure.reason)
    }))
  }))
