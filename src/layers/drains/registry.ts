/**
 * The table of drain kinds: each kind of DrainUrl and the factory that makes its sink. The type
 * makes it exhaustive, so a new kind in DrainUrl does not compile until it has an entry here.
 */
import { Context, type Effect } from "effect"
import type { DrainKind, DrainUrl } from "../../domain/DrainUrl.ts"
import type { DrainError } from "./DrainError.ts"
import type { DrainSink } from "./DrainRunner.ts"
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
  (registry[url._tag] as (url: DrainUrl) => Effect.Effect<DrainSink, DrainError>)(url)

/** How Drains makes the sink of a drain URL; tests swap it to send to memory. */
export const DrainFactory = Context.Reference<(url: DrainUrl) => Effect.Effect<DrainSink, DrainError>>(
  "logtrain/drains/DrainFactory",
  { defaultValue: () => sinkFor }
)
