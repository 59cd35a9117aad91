/**
 * A stand-in Loki push endpoint (`POST /loki/api/v1/push`), JSON bodies plain or gzipped, checking
 * what Loki's distributor and ingester check and answering in their words:
 *
 * - stream labels: at least one; names `[a-zA-Z_][a-zA-Z0-9_]*` (not `__`-prefixed); at most 15;
 *   names ≤ 1024 and values ≤ 2048 characters — else 400 with Loki's message, the stream dropped;
 * - entries: `[<unix ns as a decimal string>, <line>, {<structured metadata>}?]`; metadata refused
 *   (400) when `allowStructuredMetadata` is off, as Loki 2 or `allow_structured_metadata: false`;
 * - order, as Loki with `unordered_writes: false`: an entry older than its stream's newest is
 *   ignored ('entry out of order'); an entry equal in time and line to one kept is a duplicate,
 *   dropped silently. Valid entries of a request are kept even when it is answered 400, and the
 *   answer says `total ignored: N out of M`, as the ingester does;
 * - `X-Scope-OrgID` and `Authorization` are recorded; `status` and `retryAfter` make it answer 429
 *   or 5xx; it can be taken down and started again on the same port.
 */
import * as Http from "node:http"
import { gunzipSync } from "node:zlib"
import * as StandInServer from "./StandInServer.ts"

export interface LokiEntry {
  readonly ns: string
  readonly line: string
  readonly metadata: Record<string, string> | undefined
}

export interface LokiStream {
  readonly labels: Record<string, string>
  readonly entries: Array<LokiEntry>
}

export interface FakeLoki {
  readonly port: number
  /** Streams by their label set (`{a="1", b="2"}`, sorted names), with the entries kept, in order. */
  readonly streams: Map<string, LokiStream>
  /** Every request: status, tenant, authorization, encoding, entries. */
  readonly requests: Array<{ readonly status: number; readonly tenant: string | undefined; readonly authorization: string | undefined; readonly gzip: boolean; readonly entries: number }>
  /** Entries kept, in order of arrival. */
  readonly lines: () => Array<string>
  status: number
  retryAfter: string | undefined
  allowStructuredMetadata: boolean
  stop(): Promise<void>
  start(): Promise<void>
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export const selector = (labels: Record<string, string>): string =>
  `{${Object.keys(labels).toSorted().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(", ")}}`

class Refused extends Error {}

const validateLabels = (labels: unknown): Record<string, string> => {
  if (typeof labels !== "object" || labels === null || Array.isArray(labels)) throw new Refused("error parsing labels: not an object")
  const entries = Object.entries(labels)
  if (entries.length === 0) throw new Refused("error at least one label pair is required per stream")
  const shown = selector(labels as Record<string, string>)
  if (entries.length > 15) throw new Refused(`entry for stream '${shown}' has ${entries.length} label names; limit 15`)
  for (const [name, value] of entries) {
    if (typeof value !== "string") throw new Refused(`Error parsing labels '${shown}' with error: value of ${name} is not a string`)
    if (!LABEL_NAME.test(name) || name.startsWith("__")) {
      throw new Refused(`Error parsing labels '${shown}' with error: invalid label name ${name}`)
    }
    if (name.length > 1024) throw new Refused(`stream '${shown}' has label name too long: '${name}'`)
    if (value.length > 2048) throw new Refused(`stream '${shown}' has label value too long: '${value}'`)
  }
  return labels as Record<string, string>
}

export const listen = async (options: { readonly port?: number } = {}): Promise<FakeLoki> => {
  const streams = new Map<string, LokiStream>()
  const requests: FakeLoki["requests"] = []
  const kept: Array<string> = []

  const push = (body: unknown): { ignored: Array<string>; refusals: Array<string>; total: number } => {
    if (typeof body !== "object" || body === null || !Array.isArray((body as { streams?: unknown }).streams)) {
      throw new Refused("error at least one valid stream is required for ingestion")
    }
    const ignored: Array<string> = []
    const refusals: Array<string> = []
    let total = 0
    for (const raw of (body as { streams: Array<{ stream?: unknown; values?: unknown }> }).streams) {
      let labels: Record<string, string>
      try {
        labels = validateLabels(raw.stream)
      } catch (error) {
        if (!(error instanceof Refused)) throw error
        refusals.push(error.message)
        continue
      }
      const key = selector(labels)
      let stream = streams.get(key)
      if (stream === undefined) {
        stream = { labels, entries: [] }
        streams.set(key, stream)
      }
      const values = Array.isArray(raw.values) ? raw.values as Array<unknown> : []
      let ignoredHere = 0
      const lines: Array<string> = []
      for (const value of values) {
        total++
        if (!Array.isArray(value) || typeof value[0] !== "string" || !/^\d+$/.test(value[0]) || typeof value[1] !== "string") {
          throw new Refused(`error parsing an entry of stream '${key}'`)
        }
        const [ns, line, metadata] = value as [string, string, Record<string, string> | undefined]
        if (metadata !== undefined && !loki.allowStructuredMetadata) {
          const refusal = `stream '${key}' includes structured metadata, but this feature is disallowed. Please see \`limits_config.allow_structured_metadata\` or contact your Loki administrator to enable it.`
          if (!refusals.includes(refusal)) refusals.push(refusal)
          continue
        }
        const last = stream.entries.at(-1)
        if (last !== undefined && BigInt(ns) < BigInt(last.ns)) {
          ignoredHere++
          lines.push(`entry with timestamp ${new Date(Number(BigInt(ns) / 1_000_000n)).toISOString()} ignored, reason: 'entry out of order',`)
          continue
        }
        if (last !== undefined && last.ns === ns && last.line === line) continue
        stream.entries.push({ ns, line, metadata })
        kept.push(line)
      }
      if (ignoredHere > 0) {
        ignored.push(`${lines.slice(0, 10).join("\n")}\nuser 'fake', total ignored: ${ignoredHere} out of ${values.length} for stream: ${key}`)
      }
    }
    return { ignored, refusals, total }
  }

  const handler: Http.RequestListener = (req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      let entries = 0
      const answer = (status: number, text: string, headers: Record<string, string> = {}) => {
        const tenant = req.headers["x-scope-orgid"] as string | undefined
        requests.push({ status, tenant, authorization: req.headers.authorization, gzip: req.headers["content-encoding"] === "gzip", entries })
        res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers })
        res.end(text === "" ? undefined : `${text}\n`)
      }
      if (req.method !== "POST" || req.url !== "/loki/api/v1/push") return answer(404, "404 page not found")
      if (loki.status !== 204) {
        return answer(loki.status, `answering ${loki.status} on purpose`, loki.retryAfter === undefined ? {} : { "retry-after": loki.retryAfter })
      }
      let body: unknown
      try {
        const raw = Buffer.concat(chunks)
        const text = (req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw).toString("utf8")
        if (!(req.headers["content-type"] ?? "").startsWith("application/json")) return answer(415, "unsupported content type")
        body = JSON.parse(text)
      } catch (error) {
        return answer(400, `error parsing the push request: ${(error as Error).message}`)
      }
      try {
        const { ignored, refusals, total } = push(body)
        entries = total
        if (refusals.length > 0) return answer(400, refusals.join("\n"))
        if (ignored.length > 0) return answer(400, ignored.join("\n"))
        return answer(204, "")
      } catch (error) {
        if (!(error instanceof Refused)) throw error
        return answer(400, error.message)
      }
    })
  }

  const http = StandInServer.make(handler, { port: options.port })
  const loki: FakeLoki = {
    get port() {
      return http.port
    },
    streams,
    requests,
    lines: () => kept,
    status: 204,
    retryAfter: undefined,
    allowStructuredMetadata: true,
    start: http.start,
    stop: http.stop
  }
  await loki.start()
  return loki
}
