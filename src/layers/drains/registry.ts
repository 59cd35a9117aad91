/**
 * The table of drain kinds: each kind of DrainUrl and the factory that makes its sink. The type
 * makes it exhaustive, so a new kind in DrainUrl does not compile until it has an entry here.
 *
 * Every sink made here is kept from showing its URL's secrets: whatever its errors and reports say
 * (a receiver's answer may echo the token it was sent) has them masked before the runner logs it
 * or makes a metric label of it — for every kind, whether or not it masks them itself.
 */
import { Context, Effect } from "effect"
import { type DrainKind, type DrainUrl, secretsOf } from "../../domain/DrainUrl.ts"
import { maskCredentials, maskSecretsInCut } from "../../domain/Excerpt.ts"
import { DrainError } from "./DrainError.ts"
import type { DeliveryReport, DrainSink } from "./DrainSink.ts"
import * as Elasticsearch from "./elasticsearch.ts"
import * as Http from "./http.ts"
import * as Loki from "./loki.ts"
import * as Otlp from "./otlp.ts"
import * as Persistent from "./persistent.ts"
import * as Stdout from "./stdout.ts"
import * as Syslog from "./syslog.ts"

export type DrainFactory<K extends DrainKind> = (
  url: Extract<DrainUrl, { readonly _tag: K }>
) => Effect.Effect<DrainSink, DrainError>

export const registry: { readonly [K in DrainKind]: DrainFactory<K> } = {
  Syslog: Syslog.make,
  Stdout: Stdout.make,
  Http: Http.make,
  Elasticsearch: Elasticsearch.make,
  Persistent: Persistent.make,
  Otlp: Otlp.make,
  Loki: Loki.make
}

export const sinkFor = (url: DrainUrl): Effect.Effect<DrainSink, DrainError> =>
  masked(url, (registry[url._tag] as (url: DrainUrl) => Effect.Effect<DrainSink, DrainError>)(url))

/** A sink whose errors and reports never show the secrets of `url`. */
export const masked = (url: DrainUrl, make: Effect.Effect<DrainSink, DrainError>): Effect.Effect<DrainSink, DrainError> => {
  const secrets = secretsOf(url.endpoint)
  const clean = (text: string) => maskSecretsInCut(text, secrets)
  const cleanError = (error: DrainError) =>
    new DrainError({ ...error, detail: clean(error.detail), code: error.code === undefined ? undefined : label(clean(error.code)) })
  const cleanReport = (report: DeliveryReport | void): DeliveryReport | void => {
    if (report === undefined) return report
    const rejected = new Map<string, number>()
    for (const [reason, n] of report.rejected) {
      const key = label(clean(reason))
      rejected.set(key, (rejected.get(key) ?? 0) + n)
    }
    return { rejected, example: report.example === undefined ? undefined : clean(maskCredentials(report.example)) }
  }
  return Effect.map(Effect.mapError(make, cleanError), (sink) => ({
    ...sink,
    sender: Effect.map(sink.sender, (sender) => ({
      ...sender,
      send: (batch) => Effect.map(Effect.mapError(sender.send(batch), cleanError), cleanReport)
    }))
  }))
}

/** A metric label from a receiver's word: its shape kept to a short name, or `other`. */
const label = (reason: string): string => (/^[A-Za-z0-9_.-]{1,64}$/.test(reason) ? reason : "other")

/** How Drains makes the sink of a drain URL; tests swap it to send to memory. */
export const DrainFactory = Context.Reference<(url: DrainUrl) => Effect.Effect<DrainSink, DrainError>>(
  "logtrain/drains/DrainFactory",
  { defaultValue: () => sinkFor }
)
