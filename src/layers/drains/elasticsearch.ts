/**
 * Elasticsearch drains (`es+https://`, `es+http://`, `elasticsearch+http(s)://`, `es://`,
 * `elasticsearch://`): batches indexed through the `_bulk` API.
 *
 * - Auth, as the seed README says: `auth=basic` (default) from user:password; `auth=bearer` the
 *   password part as a bearer token; `auth=apikey` the user as the API key id and the password as
 *   the key (`Authorization: ApiKey base64(id:key)`). Only with a password, as the original.
 * - Index: `index=`, or the packet's hostname made a valid index name.
 * - Batches: up to 1000 documents or 5 MiB, gathered for up to a second (DRAIN_* override).
 * - Answers: Elasticsearch answers every document, so the answer is read whole — bounded by what
 *   the largest real answer can be (Bulk.answerLimit: 2.7 MiB for 1000 documents); a longer one is
 *   refused (`answer_too_large`), not retried, since its documents' fate cannot be read. A request
 *   that fails as a whole (network, 429, 5xx) is retried with backoff. When it succeeds, each
 *   item's answer counts: delivered (2xx, or 409 — already indexed by an earlier
 *   attempt, since ids are kept across retries), sent again on the next attempt (429, 5xx; only
 *   those items), or refused for good (any other 4xx, e.g. a mapping error): dropped and counted
 *   by Elasticsearch's error type (`logtrain_drain_rejected_total{reason=…}`).
 * - TLS is verified against the system roots plus `ca=` (a base64 PEM bundle), unless
 *   `insecure=true`.
 */
import { Duration, Effect, Redacted } from "effect"
import { Buffer } from "node:buffer"
import { randomUUID } from "node:crypto"
import { type ElasticsearchAuth, type ElasticsearchDrainUrl, secretsOf } from "../../domain/DrainUrl.ts"
import * as Bulk from "../../domain/ElasticsearchBulk.ts"
import { excerpt } from "../../domain/Excerpt.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as Http from "../transports/http.ts"
import { DrainError, fromTransport } from "./DrainError.ts"
import type { DeliveryReport, DrainSink } from "./DrainSink.ts"

const TIMEOUT = Duration.seconds(60)

/** Distinct error types counted by name per drain; further ones are counted as `other`. */
const MAX_ERROR_TYPES = 32

/** The Authorization header for an auth mode, if any. */
export const authorization = (auth: ElasticsearchAuth): string | undefined => {
  switch (auth._tag) {
    case "None":
      return undefined
    case "Basic":
      return `Basic ${Buffer.from(`${auth.username}:${Redacted.value(auth.password)}`).toString("base64")}`
    case "Bearer":
      return `Bearer ${Redacted.value(auth.token)}`
    case "ApiKey":
      return `ApiKey ${Buffer.from(`${auth.id}:${Redacted.value(auth.key)}`).toString("base64")}`
  }
}

/** A batch's progress across attempts: its documents' ids, which are still to send, what was refused. */
interface Progress {
  readonly items: ReadonlyArray<Bulk.BulkItem>
  pending: ReadonlyArray<number>
  readonly rejected: Map<string, number>
  lastRefusal: string | undefined
}

export const make = (url: ElasticsearchDrainUrl): Effect.Effect<DrainSink, DrainError> =>
  Effect.succeed({
    settings: { batchSize: 1000, batchBytes: 5 * 1024 * 1024, batchTimeout: Duration.seconds(1) },
    sender: Effect.map(
      Http.client({ url: url.bulkUrl, display: url.display, tls: { ca: url.ca, insecure: url.insecure }, timeout: TIMEOUT }),
      (client) => {
        const auth = authorization(url.auth)
        const headers: Record<string, string> = {
          "content-type": "application/x-ndjson",
          ...(auth === undefined ? {} : { authorization: auth })
        }
        const secrets = secretsOf(url.endpoint)
        const progress = new WeakMap<ReadonlyArray<LogPacket>, Progress>()
        /** The error types this sender has counted by name (metric labels: a bounded set). */
        const types = new Set<string>()
        const start = (batch: ReadonlyArray<LogPacket>): Progress => {
          const prefix = randomUUID()
          return {
            items: batch.map((packet, i) => ({ id: `${prefix}-${i}`, index: Bulk.indexFor(packet, url.index), packet })),
            pending: batch.map((_, i) => i),
            rejected: new Map(),
            lastRefusal: undefined
          }
        }
        return {
          send: Effect.fn("Elasticsearch.send")(function*(batch: ReadonlyArray<LogPacket>) {
            let state = progress.get(batch)
            if (state === undefined) {
              state = start(batch)
              progress.set(batch, state)
            }
            const items = state.pending.map((i) => state.items[i]!)
            const body = Bulk.encode(items)
            const readLimit = Bulk.answerLimit(items.length, Buffer.byteLength(body))
            const response = yield* Effect.mapError(client.post(body, headers, { readLimit }), fromTransport(url.display))
            const delivered = batch.length - state.pending.length - countOf(state.rejected)
            if (!response.complete && response.status >= 200 && response.status < 300) {
              return yield* new DrainError({
                reason: "Rejected",
                drain: url.display,
                code: "answer_too_large",
                detail: `the _bulk answer for ${items.length} ${items.length === 1 ? "document" : "documents"} is longer than ${readLimit} bytes, more than ` +
                  `Elasticsearch ever answers; whether they were indexed cannot be read, so they are not sent again ` +
                  `(it starts: ${excerpt(response.body, secrets, 120)})`,
                delivered
              })
            }
            const outcome = Bulk.readResponse(response.status, response.body, items.length, secrets)
            if (outcome._tag !== "Items") {
              return yield* new DrainError({
                reason: outcome._tag === "Retry" ? "Unavailable" : "Rejected",
                drain: url.display,
                code: outcome._tag === "Rejected" ? `http_${response.status}` : undefined,
                detail: outcome.detail,
                delivered
              })
            }
            const still: Array<number> = []
            let retry: Bulk.ItemOutcome | undefined
            outcome.items.forEach((item, k) => {
              if (item._tag === "Retry") {
                still.push(state.pending[k]!)
                retry ??= item
              } else if (item._tag === "Rejected") {
                if (!types.has(item.type) && types.size < MAX_ERROR_TYPES) types.add(item.type)
                const type = types.has(item.type) ? item.type : "other"
                state.rejected.set(type, (state.rejected.get(type) ?? 0) + 1)
                state.lastRefusal = `${item.type}: ${item.reason}`
              }
            })
            state.pending = still
            if (retry !== undefined && retry._tag === "Retry") {
              return yield* new DrainError({
                reason: "Unavailable",
                drain: url.display,
                detail: `${still.length} of ${items.length} items answered ${retry.status} (${retry.type}); sending those again`
              })
            }
            return { rejected: state.rejected, example: state.lastRefusal } satisfies DeliveryReport
          })
        }
      }
    )
  })

const countOf = (counts: ReadonlyMap<string, number>): number => {
  let n = 0
  for (const count of counts.values()) n += count
  return n
}
