/**
 * Loki drains (`loki+http://host[:port][/prefix]`, `loki+https://…`): batches pushed to Loki's
 * push API (`/loki/api/v1/push`; port 3100 for http, 443 for https), as JSON (see
 * domain/LokiPush.ts for streams, labels and metadata).
 *
 * - `?tenant=` sends `X-Scope-OrgID` (multi-tenant Loki); user:password in the URL, Basic auth.
 * - Bodies over 4 KiB are gzipped (`?compression=none` to send them plain).
 * - Batches: up to 2000 entries or ~1 MiB (Promtail's size), gathered for up to a second. One
 *   worker, as Promtail: a stream holds an app's lines from all its sources, and Loki (before 2.4,
 *   or with `unordered_writes: false`) refuses entries older than its newest — batches in flight
 *   side by side would race.
 * - Answers: 2xx delivered; 429 and 5xx retried (after `Retry-After`, when given, at most
 *   DRAIN_RETRY_MAX_DELAY), as are network errors; 400 refused for good and counted by Loki's reason
 *   (`out_of_order`, `line_too_long`, …) — only the entries Loki says it ignored when it says how
 *   many (it keeps the others), else the batch; any other 4xx refused (`http_<status>`). Loki says
 *   how many per failing stream, so its answer is read whole (up to ANSWER_LIMIT): cut short, the
 *   later streams' ignored entries would be counted as delivered.
 * - A retried batch is sent as the same bytes (encoded once), so Loki drops what it already has.
 */
import { Clock, Duration, Effect } from "effect"
import { type LokiDrainUrl, secretsOf } from "../../domain/DrainUrl.ts"
import { excerpt } from "../../domain/Excerpt.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as LokiPush from "../../domain/LokiPush.ts"
import * as RetryAfter from "../../domain/RetryAfter.ts"
import * as Http from "../transports/http.ts"
import * as Compress from "./Compress.ts"
import { DrainError, fromTransport } from "./DrainError.ts"
import { defaultSettings, type DeliveryReport, type DrainSink, DrainSettings } from "./DrainSink.ts"

const TIMEOUT = Duration.seconds(30)

/**
 * The most of an answer read. Loki's 400 has a paragraph per failing stream (up to 10 entries'
 * errors and `total ignored: N out of M`, ~1 KiB): 1 MiB holds a thousand streams' counts.
 */
const ANSWER_LIMIT = 1024 * 1024

export const make = (url: LokiDrainUrl): Effect.Effect<DrainSink, DrainError> =>
  Effect.gen(function*() {
    const configured = yield* DrainSettings
    const maxWait = Duration.toMillis(configured.retryMaxDelay ?? defaultSettings.retryMaxDelay)
    const options: LokiPush.PushOptions = { labels: url.labels, metadata: url.metadata }
    return {
      settings: { batchSize: 2000, batchBytes: 1024 * 1024, batchTimeout: Duration.seconds(1) },
      maxWorkers: 1,
      sender: Effect.map(
        Http.client({ url: url.url, display: url.display, tls: { ca: url.ca, insecure: url.insecure }, timeout: TIMEOUT }),
        (client) => {
          const secrets = secretsOf(url.endpoint)
          const clocks = new Map<string, LokiPush.StreamClock>()
          const prepared = new WeakMap<ReadonlyArray<LogPacket>, { readonly body: Uint8Array; readonly headers: Record<string, string> }>()
          const prepare = Effect.fnUntraced(function*(batch: ReadonlyArray<LogPacket>) {
            const ready = prepared.get(batch)
            if (ready !== undefined) return ready
            const body = yield* Compress.compress(Compress.toBytes(LokiPush.encode(batch, options, clocks)), url.compression === "gzip")
            const headers = Compress.headersOf(body, "application/json")
            if (url.tenant !== undefined) headers["x-scope-orgid"] = url.tenant
            const request = { body: body.bytes, headers }
            prepared.set(batch, request)
            return request
          })
          return {
            send: Effect.fn("Loki.send")(function*(batch: ReadonlyArray<LogPacket>) {
              const request = yield* prepare(batch)
              const response = yield* Effect.mapError(client.post(request.body, request.headers, { readLimit: ANSWER_LIMIT }), fromTransport(url.display))
              if (response.status >= 200 && response.status < 300) return
              const said = excerpt(response.body, secrets, 300)
              const detail = `HTTP ${response.status}${said === "" ? "" : `: ${said}`}`
              if (response.status === 400) {
                const refusal = LokiPush.readRefusal(response.body)
                const refused = Math.min(refusal.count ?? batch.length, batch.length)
                return {
                  rejected: new Map(refused === 0 ? [] : [[refusal.reason, refused]]),
                  example: `${refused} of ${batch.length} entries refused: ${said}`
                } satisfies DeliveryReport
              }
              if (response.status !== 429 && response.status < 500) {
                return yield* new DrainError({ reason: "Rejected", drain: url.display, code: `http_${response.status}`, detail })
              }
              const asked = RetryAfter.parse(response.headers["retry-after"], yield* Clock.currentTimeMillis)
              if (asked !== undefined && asked > 0) yield* Effect.sleep(Duration.millis(Math.min(asked, maxWait)))
              return yield* new DrainError({ reason: "Unavailable", drain: url.display, code: `http_${response.status}`, detail })
            })
          }
        }
      )
    } satisfies DrainSink
  })

