/**
 * `http://`, `https://` drains: packets as JSON objects with the original's field names —
 * `{"severity","facility","hostname","tag","time","message"}` — POSTed to the URL.
 *
 * - `?format=array` (default): each batch as one JSON array (`application/json`).
 * - `?format=ndjson`: each batch as one object per line (`application/x-ndjson`).
 * - `?format=single`: one object per request, as the original did. A retried batch resumes after
 *   the packets already delivered, so a failure in the middle does not send the first ones twice.
 *
 * Batches wait up to a second to fill (configurable with DRAIN_BATCH_TIMEOUT). 5xx, 408, 425 and
 * 429 answers and network errors are retried; other answers drop the batch, counted as rejected.
 * `ca=` (a base64 PEM bundle) adds trusted CAs to the system roots; `insecure=true` skips
 * certificate verification; user info in the URL becomes Basic auth.
 */
import { Duration, Effect } from "effect"
import { type HttpDrainUrl, secretsOf } from "../../domain/DrainUrl.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { toJson } from "../../domain/JsonPacket.ts"
import * as Http from "../transports/http.ts"
import { type DrainError, fromHttpStatus, fromTransport } from "./DrainError.ts"
import type { DrainSink } from "./DrainSink.ts"

const TIMEOUT = Duration.seconds(30)

export const make = (url: HttpDrainUrl): Effect.Effect<DrainSink, DrainError> =>
  Effect.succeed({
    settings: { batchTimeout: Duration.seconds(1) },
    // One request at a time per source keeps `single` in order.
    sender: Effect.map(
      Http.client({ url: url.url, display: url.display, tls: { ca: url.ca, insecure: url.insecure }, timeout: TIMEOUT }),
      (client) => {
        const secrets = secretsOf(url.endpoint)
        const post = (body: string, contentType: string) =>
          client.post(body, { "content-type": contentType }).pipe(
            Effect.mapError(fromTransport(url.display)),
            Effect.flatMap((response) => {
              const error = fromHttpStatus(url.display, response.status, response.body, secrets)
              return error === undefined ? Effect.void : Effect.fail(error)
            })
          )
        /** For `single`: how many packets of a batch are already delivered. */
        const delivered = new WeakMap<ReadonlyArray<LogPacket>, number>()
        const postEach = Effect.fnUntraced(function*(batch: ReadonlyArray<LogPacket>) {
          for (let i = delivered.get(batch) ?? 0; i < batch.length; i++) {
            yield* post(toJson(batch[i]!), "application/json")
            delivered.set(batch, i + 1)
          }
        })
        return {
          send: (batch: ReadonlyArray<LogPacket>) => {
            switch (url.format) {
              case "array":
                return post(`[${batch.map(toJson).join(",")}]`, "application/json")
              case "ndjson":
                return post(`${batch.map(toJson).join("\n")}\n`, "application/x-ndjson")
              case "single":
                return postEach(batch)
            }
          }
        }
      }
    )
  })
