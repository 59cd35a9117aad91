/**
 * OpenTelemetry drains (`otlp+http://host[:port][/path]`, `otlp+https://…`): batches POSTed as
 * OTLP/HTTP logs (`ExportLogsServiceRequest`) to `/v1/logs` (port 4318) unless a path is given.
 *
 * - Encoding: protobuf (`application/x-protobuf`, the spec's default) by logtrain's own encoder,
 *   straight from packets (the same bytes as effect/observability's encoder writes for the same
 *   logs, many times faster: see domain/otlp/Protobuf.ts and Logs.ts);
 *   `?encoding=json` by effect/observability's `OtlpSerialization.layerJson`. Bodies over 4 KiB
 *   are gzipped (`?compression=none` to send them plain); receivers must accept gzip.
 * - What a record holds: see domain/otlp/Logs.ts. `observedTimeUnixNano` is when logtrain first
 *   sent the batch: packets do not carry their arrival time.
 * - Batches: up to 2000 records or ~2 MiB, gathered for up to a second (DRAIN_* override).
 * - Answers, as the OTLP spec says: 2xx delivered — with a partial success, its
 *   `rejected_log_records` are counted as refused (`reason="partial_success"`, the receiver's
 *   message in the log); 429, 502, 503, 504 retried after the `Retry-After` the receiver asks
 *   for (at most DRAIN_RETRY_MAX_DELAY), else with backoff; network errors retried; any other
 *   status refused for good (`reason="http_<status>"`, the Status message in the log) — the spec
 *   forbids retrying them, 500 included.
 * - A retried batch is sent as the same bytes (encoded once).
 */
import { Clock, Duration, Effect } from "effect"
import { OtlpSerialization } from "effect/observability"
import { type OtlpDrainUrl, secretsOf } from "../../domain/DrainUrl.ts"
import { excerpt } from "../../domain/Excerpt.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as Answers from "../../domain/otlp/Answers.ts"
import * as Logs from "../../domain/otlp/Logs.ts"
import * as RetryAfter from "../../domain/RetryAfter.ts"
import * as Http from "../transports/http.ts"
import * as Compress from "./Compress.ts"
import { DrainError, fromTransport } from "./DrainError.ts"
import { defaultSettings, type DeliveryReport, type DrainSink, DrainSettings } from "./DrainSink.ts"

const TIMEOUT = Duration.seconds(30)

/** The statuses the OTLP spec says to retry; every other failure status must not be. */
const RETRYABLE = new Set([429, 502, 503, 504])

export const make = (url: OtlpDrainUrl): Effect.Effect<DrainSink, DrainError> =>
  Effect.gen(function*() {
    const configured = yield* DrainSettings
    const maxWait = Duration.toMillis(configured.retryMaxDelay ?? defaultSettings.retryMaxDelay)
    const json = yield* Effect.provide(Effect.service(OtlpSerialization.OtlpSerialization), OtlpSerialization.layerJson)
    const contentType = Answers.contentTypes[url.encoding]
    const encode = (batch: ReadonlyArray<LogPacket>, observedMillis: number): Uint8Array => {
      if (url.encoding === "protobuf") return Logs.encodePackets(batch, observedMillis)
      const data = Logs.fromPackets(batch, Logs.nanosOf(observedMillis))
      const body = json.logs(data)
      // layerJson makes a Uint8Array body; anything else would be a change of Effect's.
      return body._tag === "Uint8Array" ? body.body : Compress.toBytes(JSON.stringify(data))
    }
    return {
      settings: { batchSize: 2000, batchBytes: 2 * 1024 * 1024, batchTimeout: Duration.seconds(1) },
      sender: Effect.map(
        Http.client({ url: url.url, display: url.display, tls: { ca: url.ca, insecure: url.insecure }, timeout: TIMEOUT }),
        (client) => {
          const secrets = secretsOf(url.endpoint)
          /** Each batch's request, encoded on its first attempt and sent as it is on the others. */
          const prepared = new WeakMap<ReadonlyArray<LogPacket>, { readonly body: Uint8Array; readonly headers: Record<string, string> }>()
          const prepare = Effect.fnUntraced(function*(batch: ReadonlyArray<LogPacket>) {
            const ready = prepared.get(batch)
            if (ready !== undefined) return ready
            const observed = yield* Clock.currentTimeMillis
            const body = yield* Compress.compress(encode(batch, observed), url.compression === "gzip")
            const request = { body: body.bytes, headers: Compress.headersOf(body, contentType) }
            prepared.set(batch, request)
            return request
          })
          return {
            send: Effect.fn("Otlp.send")(function*(batch: ReadonlyArray<LogPacket>) {
              const request = yield* prepare(batch)
              const response = yield* Effect.mapError(client.post(request.body, request.headers), fromTransport(url.display))
              const answerType = response.headers["content-type"] ?? ""
              if (response.status >= 200 && response.status < 300) {
                const partial = Answers.decodeResponse(response.bytes, answerType)
                if (partial === undefined || partial.rejected === 0) return
                return {
                  rejected: new Map([["partial_success", Math.min(partial.rejected, batch.length)]]),
                  example: `${partial.rejected} of ${batch.length} records rejected${partial.message === "" ? "" : `: ${excerpt(partial.message, secrets)}`}`
                } satisfies DeliveryReport
              }
              const message = excerpt(Answers.statusMessage(response.bytes, answerType), secrets)
              const detail = `HTTP ${response.status}${message === "" ? "" : `: ${message}`}`
              if (!RETRYABLE.has(response.status)) {
                return yield* new DrainError({ reason: "Rejected", drain: url.display, code: `http_${response.status}`, detail })
              }
              const asked = RetryAfter.parse(response.headers["retry-after"], yield* Clock.currentTimeMillis)
              if (asked !== undefined && asked > 0) yield* Effect.sleep(Duration.millis(Math.min(asked, maxWait)))
              return yield* new DrainError({
                reason: "Unavailable",
                drain: url.display,
                code: `http_${response.status}`,
                detail: asked === undefined ? detail : `${detail} (Retry-After: ${Math.ceil(asked / 1000)} s)`
              })
            })
          }
        }
      )
    } satisfies DrainSink
  })

