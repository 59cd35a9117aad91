/**
 * A stand-in for Elasticsearch 8's `_bulk` endpoint, strict where Elasticsearch is strict and as
 * wordy as it is — no Elasticsearch can run here, so this is what the drain is tested against:
 *
 * - `POST /_bulk` or `POST /<index>/_bulk`; Content-Type `application/x-ndjson` or
 *   `application/json` (else 406); the body must end with a newline (else 400); a body over
 *   `http.max_content_length` (100 MB) is a 413.
 * - Every line is parsed. An action line is an object with exactly one of index / create / update
 *   / delete; its metadata may hold only the parameters Elasticsearch knows (a `_source` in a
 *   create action — what the original sent — is a 400 for the whole request, as in
 *   Elasticsearch: "Action/metadata line [n] contains an unknown parameter [_source]"); a missing
 *   `_index` (with no index in the path) is a 400 `action_request_validation_exception`; index,
 *   create and update need a JSON object on the next line.
 * - The answer is Elasticsearch 8's, whole (no `filter_path`): `errors`, `took`, and one item per
 *   action, in order, each with `_index`, `_id`, `status` and — as Elasticsearch writes them —
 *   `_version`, `result`, `_shards`, `_seq_no`, `_primary_term` for a success, `error` with `type`,
 *   `reason` (and `caused_by`, `index_uuid`, `shard`, `index` where Elasticsearch gives them) for a
 *   failure. So its size is real: about 210 bytes per created document, 330 per conflict.
 * - Per item: an invalid index name is 400 `invalid_index_name_exception`; `create` of an `_id`
 *   already indexed is 409 `version_conflict_engine_exception`; `index` of one replaces it (200,
 *   `updated`); otherwise 201 and stored.
 * - Authorization must equal `expectAuthorization` when that is set (else 401).
 * - Tests script failures: `failRequests(n, status)` answers the next n requests as a whole;
 *   `itemStatus(doc, attempt, at)` answers single items — a status (429, 500, 503, 400 …, with the
 *   error type Elasticsearch gives it) or a whole `{ status, type, reason }`; `loseAnswers(n)`
 *   indexes the next n requests but answers 503, like an answer lost on the way.
 * - `GET /_count`, `GET /<index>/_count` count documents, as Elasticsearch does.
 */
import * as Http from "node:http"
import * as StandInServer from "./StandInServer.ts"

export interface Doc {
  readonly index: string
  readonly id: string
  readonly source: Record<string, unknown>
}

export interface ItemAnswer {
  readonly status: number
  readonly type?: string | undefined
  readonly reason?: string | undefined
}

export interface Request {
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
  readonly status: number
  /** The answer (empty when `keep` is off), and its size in bytes. */
  readonly answer: string
  readonly answerBytes: number
}

export interface Options {
  readonly tls?: { readonly cert: string; readonly key: string } | undefined
  /** Keep each document's source and each request's body (default true); off for long runs. */
  readonly keep?: boolean | undefined
  /** The port to listen on (default: any free one). */
  readonly port?: number | undefined
}

export interface FakeElasticsearch {
  readonly port: number
  /** Indexed documents, by index, in order (sources empty when `keep` is off). */
  readonly indexed: Map<string, Array<Doc>>
  readonly requests: Array<Request>
  /** Documents indexed so far. */
  readonly count: () => number
  expectAuthorization: string | undefined
  itemStatus:
    | ((doc: Doc, attempt: number, at: { readonly request: number; readonly position: number }) => number | ItemAnswer | undefined)
    | undefined
  failRequests(n: number, status: number): void
  loseAnswers(n: number): void
  all(): Array<Doc>
  stop(): Promise<void>
  start(): Promise<void>
}

const KNOWN_METADATA = new Set([
  "_index", "_id", "routing", "pipeline", "require_alias", "require_data_stream", "version", "version_type",
  "if_seq_no", "if_primary_term", "dynamic_templates", "list_executed_pipelines"
])

/** Elasticsearch's `http.max_content_length` default. */
const MAX_CONTENT_LENGTH = 100 * 1024 * 1024

const validIndexName = (name: string) =>
  name.length > 0 && name.length <= 255 && name === name.toLowerCase() && !/[\\/*?"<>| ,#:]/.test(name) &&
  !/^[-_+]/.test(name) && name !== "." && name !== ".."

class RequestError extends Error {
  readonly status: number
  readonly type: string
  constructor(status: number, type: string, reason: string) {
    super(reason)
    this.status = status
    this.type = type
  }
}

/** What Elasticsearch 8 says for a failed item of each status, when a test gives only the status. */
const scriptedError = (status: number, index: string, id: string): { type: string; reason: string; caused_by?: unknown } => {
  switch (status) {
    case 429:
      return {
        type: "es_rejected_execution_exception",
        reason: "rejected execution of coordinating operation [coordinating_and_primary_bytes=104857600, replica_bytes=0, " +
          "all_bytes=104857600, coordinating_operation_bytes=52428, max_coordinating_and_primary_bytes=107374182]"
      }
    case 503:
      return {
        type: "unavailable_shards_exception",
        reason: `[${index}][0] primary shard is not active Timeout: [1m], request: [BulkShardRequest [[${index}][0]] containing [1] requests]`
      }
    case 400:
      return {
        type: "mapper_parsing_exception",
        reason: `failed to parse field [severity] of type [long] in document with id '${id}'. Preview of field's value: 'err'`,
        caused_by: { type: "illegal_argument_exception", reason: 'For input string: "err"' }
      }
    default:
      return status >= 500
        ? { type: "illegal_state_exception", reason: `shard [${index}][0] failed while indexing [${id}]` }
        : { type: "illegal_argument_exception", reason: `scripted ${status} for [${id}]` }
  }
}

export const listen = async (options: Options = {}): Promise<FakeElasticsearch> => {
  const keep = options.keep ?? true
  const indexed = new Map<string, Array<Doc>>()
  const ids = new Set<string>()
  const attempts = new Map<string, number>()
  const requests: Array<Request> = []
  let wholeFailures = 0
  let wholeStatus = 503
  let lostAnswers = 0
  let requestCount = 0
  let seqNo = 0

  const bulk = (path: string, body: string, request: number): { errors: boolean; items: Array<unknown> } => {
    if (!body.endsWith("\n")) throw new RequestError(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
    const pathIndex = /^\/([^/_][^/]*)\/_bulk/.exec(path)?.[1]
    const lines = body.slice(0, -1).split("\n")
    const operations: Array<{ action: string; meta: Record<string, unknown>; source: Record<string, unknown> | undefined }> = []
    for (let i = 0; i < lines.length; i++) {
      let action: unknown
      try {
        action = JSON.parse(lines[i]!)
      } catch {
        throw new RequestError(400, "x_content_parse_exception", `[${i + 1}:1] Malformed action/metadata line [${i + 1}]`)
      }
      if (typeof action !== "object" || action === null || Object.keys(action).length !== 1) {
        throw new RequestError(400, "illegal_argument_exception", `Malformed action/metadata line [${i + 1}], expected a simple value for field [...] but found [START_OBJECT]`)
      }
      const [name, meta] = Object.entries(action)[0]! as [string, Record<string, unknown>]
      if (!["index", "create", "update", "delete"].includes(name)) {
        throw new RequestError(400, "illegal_argument_exception", `Malformed action/metadata line [${i + 1}], expected field [create], [delete], [index] or [update] but found [${name}]`)
      }
      for (const key of Object.keys(meta ?? {})) {
        if (!KNOWN_METADATA.has(key)) {
          throw new RequestError(400, "illegal_argument_exception", `Action/metadata line [${i + 1}] contains an unknown parameter [${key}]`)
        }
      }
      if ((meta?._index ?? pathIndex) === undefined) {
        throw new RequestError(400, "action_request_validation_exception", `Validation Failed: 1: index is missing;`)
      }
      let source: Record<string, unknown> | undefined
      if (name !== "delete") {
        i++
        try {
          source = JSON.parse(lines[i] ?? "")
        } catch {
          throw new RequestError(400, "x_content_parse_exception", `[${i + 1}:1] Unexpected document line [${i + 1}]`)
        }
        if (typeof source !== "object" || source === null) throw new RequestError(400, "x_content_parse_exception", `document line [${i + 1}] is not an object`)
      }
      operations.push({ action: name, meta: meta ?? {}, source })
    }
    let errors = false
    const items = operations.map(({ action, meta, source }, position) => {
      const index = String(meta._index ?? pathIndex)
      const id = String(meta._id ?? `auto-${ids.size}`)
      const doc: Doc = { index, id, source: source ?? {} }
      const key = `${index}/${id}`
      const attempt = (attempts.get(key) ?? 0) + 1
      attempts.set(key, attempt)
      const failed = (status: number, error: Record<string, unknown>) => {
        errors = true
        return { [action]: { _index: index, _id: id, status, error } }
      }
      const done = (status: number, result: string, version: number) => ({
        [action]: {
          _index: index,
          _id: id,
          _version: version,
          result,
          _shards: { total: 2, successful: 1, failed: 0 },
          _seq_no: seqNo++,
          _primary_term: 1,
          status
        }
      })
      if (!validIndexName(index)) {
        return failed(400, {
          type: "invalid_index_name_exception",
          reason: `Invalid index name [${index}], must be lowercase`,
          index_uuid: "_na_",
          index
        })
      }
      const scripted = fake.itemStatus?.(doc, attempt, { request, position })
      if (scripted !== undefined) {
        const answer = typeof scripted === "number" ? { status: scripted } : scripted
        if (answer.status >= 300) {
          const known = scriptedError(answer.status, index, id)
          return failed(answer.status, {
            ...known,
            ...(answer.type === undefined ? {} : { type: answer.type }),
            ...(answer.reason === undefined ? {} : { reason: answer.reason })
          })
        }
      }
      if (ids.has(key)) {
        if (action === "create") {
          return failed(409, {
            type: "version_conflict_engine_exception",
            reason: `[${id}]: version conflict, document already exists (current version [1])`,
            index_uuid: "aAsFqTI0Tc2W0LCWgPNrOA",
            shard: "0",
            index
          })
        }
        return done(200, "updated", attempt)
      }
      ids.add(key)
      const list = indexed.get(index) ?? []
      list.push(keep ? doc : { index, id, source: {} })
      indexed.set(index, list)
      return done(201, "created", 1)
    })
    return { errors, items }
  }

  const handler: Http.RequestListener = (req, res) => {
    const chunks: Array<Buffer> = []
    let length = 0
    req.on("data", (chunk: Buffer) => {
      length += chunk.length
      if (length <= MAX_CONTENT_LENGTH) chunks.push(chunk)
    })
    req.on("end", () => {
      const started = performance.now()
      const body = length <= MAX_CONTENT_LENGTH ? Buffer.concat(chunks).toString("utf8") : ""
      const path = req.url ?? ""
      const reply = (status: number, json: unknown) => {
        const text = JSON.stringify(json)
        requests.push({ path, headers: req.headers, body: keep ? body : "", status, answer: keep ? text : "", answerBytes: Buffer.byteLength(text) })
        res.writeHead(status, { "content-type": "application/json", "x-elastic-product": "Elasticsearch" })
        res.end(text)
      }
      const error = (status: number, type: string, reason: string) =>
        reply(status, { error: { root_cause: [{ type, reason }], type, reason }, status })
      if (req.method === "GET") {
        const count = /^\/(?:([^/_][^/]*)\/)?_count(\?|$)/.exec(path)
        if (count === null) return error(404, "not_found", `no handler for ${req.method} ${path}`)
        const n = count[1] === undefined ? ids.size : indexed.get(count[1])?.length
        if (n === undefined) return error(404, "index_not_found_exception", `no such index [${count[1]}]`)
        return reply(200, { count: n, _shards: { total: 1, successful: 1, skipped: 0, failed: 0 } })
      }
      if (req.method !== "POST" || !/\/_bulk(\?|$)/.test(path)) return error(404, "not_found", `no handler for ${req.method} ${path}`)
      const contentType = String(req.headers["content-type"] ?? "").split(";")[0]
      if (contentType !== "application/x-ndjson" && contentType !== "application/json") {
        return reply(406, { error: `Content-Type header [${contentType}] is not supported`, status: 406 })
      }
      if (fake.expectAuthorization !== undefined && req.headers.authorization !== fake.expectAuthorization) {
        return error(401, "security_exception", "unable to authenticate user [elastic] for REST request [/_bulk]")
      }
      if (length > MAX_CONTENT_LENGTH) {
        return error(413, "content_too_long_exception", `entity content is too long [${length}] for the configured buffer limit [${MAX_CONTENT_LENGTH}]`)
      }
      if (wholeFailures > 0) {
        wholeFailures--
        return error(wholeStatus, wholeStatus === 429 ? "es_rejected_execution_exception" : "cluster_block_exception", `scripted ${wholeStatus}`)
      }
      try {
        const result = bulk(path, body, ++requestCount)
        if (lostAnswers > 0) {
          lostAnswers--
          return error(503, "unavailable", "indexed, but the answer is lost on the way")
        }
        reply(200, { errors: result.errors, took: Math.round(performance.now() - started), items: result.items })
      } catch (e) {
        if (e instanceof RequestError) return error(e.status, e.type, e.message)
        throw e
      }
    })
  }

  const http = StandInServer.make(handler, { port: options.port, tls: options.tls })
  const fake: FakeElasticsearch = {
    get port() {
      return http.port
    },
    indexed,
    requests,
    count: () => ids.size,
    expectAuthorization: undefined,
    itemStatus: undefined,
    failRequests: (n, status) => {
      wholeFailures = n
      wholeStatus = status
    },
    loseAnswers: (n) => {
      lostAnswers = n
    },
    all: () => [...indexed.values()].flat(),
    start: http.start,
    stop: http.stop
  }
  await fake.start()
  return fake
}
