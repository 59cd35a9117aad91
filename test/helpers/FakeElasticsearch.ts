/**
 * A stand-in for Elasticsearch's `_bulk` endpoint, strict where Elasticsearch is strict — no
 * Elasticsearch can run here, so this is what the drain is tested against:
 *
 * - `POST /_bulk` or `POST /<prefix>/_bulk`; Content-Type `application/x-ndjson` or
 *   `application/json` (else 406); the body must end with a newline (else 400).
 * - Every line is parsed. An action line is an object with exactly one of index / create / update
 *   / delete; its metadata may hold only the parameters Elasticsearch knows (a `_source` in a
 *   create action — what the original sent — is a 400 for the whole request, as in
 *   Elasticsearch: "Action/metadata line [n] contains an unknown parameter [_source]"); a missing
 *   `_index` (with no index in the path) is a 400 `action_request_validation_exception`; index,
 *   create and update need a JSON object on the next line.
 * - Per item: an invalid index name is 400 `invalid_index_name_exception`; create of an `_id`
 *   already indexed is 409 `version_conflict_engine_exception`; otherwise 201 and stored.
 * - Authorization must equal `expectAuthorization` when that is set (else 401).
 * - Tests can script failures: `failRequests(n, status)` answers the next n requests as a whole;
 *   `itemStatus(doc, attempt)` answers single items (e.g. 429 the first time, 400 always); and
 *   `loseAnswers(n)` indexes the next n requests but answers 503, like an answer lost on the way.
 */
import * as Http from "node:http"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"

export interface Doc {
  readonly index: string
  readonly id: string
  readonly source: Record<string, unknown>
}

export interface FakeElasticsearch {
  readonly port: number
  /** Indexed documents, by index, in order. */
  readonly indexed: Map<string, Array<Doc>>
  readonly requests: Array<{ readonly path: string; readonly headers: Http.IncomingHttpHeaders; readonly body: string; readonly status: number }>
  expectAuthorization: string | undefined
  itemStatus: ((doc: Doc, attempt: number) => number | undefined) | undefined
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

export const listen = async (options: { readonly tls?: { readonly cert: string; readonly key: string } } = {}): Promise<FakeElasticsearch> => {
  const indexed = new Map<string, Array<Doc>>()
  const ids = new Set<string>()
  const attempts = new Map<string, number>()
  const requests: FakeElasticsearch["requests"] = []
  let wholeFailures = 0
  let wholeStatus = 503
  let lostAnswers = 0
  let server: Http.Server | undefined
  let port = 0

  const bulk = (path: string, body: string): { errors: boolean; items: Array<unknown> } => {
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
    const items = operations.map(({ action, meta, source }) => {
      const index = String(meta._index ?? pathIndex)
      const id = String(meta._id ?? `auto-${ids.size}`)
      const doc: Doc = { index, id, source: source ?? {} }
      const key = `${index}/${id}`
      const attempt = (attempts.get(key) ?? 0) + 1
      attempts.set(key, attempt)
      const answer = (status: number, error?: { type: string; reason: string }) => {
        if (error !== undefined) errors = true
        return { [action]: { _index: index, _id: id, status, ...(error ? { error } : { result: "created" }) } }
      }
      if (!validIndexName(index)) {
        return answer(400, { type: "invalid_index_name_exception", reason: `Invalid index name [${index}], must be lowercase` })
      }
      const scripted = fake.itemStatus?.(doc, attempt)
      if (scripted !== undefined && scripted >= 300) {
        const type = scripted === 429 ? "es_rejected_execution_exception" : scripted === 400 ? "mapper_parsing_exception" : "unavailable_shards_exception"
        return answer(scripted, { type, reason: `scripted ${scripted} for [${id}]` })
      }
      if (action === "create" && ids.has(key)) {
        return answer(409, { type: "version_conflict_engine_exception", reason: `[${id}]: version conflict, document already exists` })
      }
      ids.add(key)
      const list = indexed.get(index) ?? []
      list.push(doc)
      indexed.set(index, list)
      return answer(201)
    })
    return { errors, items }
  }

  const handler: Http.RequestListener = (req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8")
      const path = req.url ?? ""
      const reply = (status: number, json: unknown) => {
        requests.push({ path, headers: req.headers, body, status })
        res.writeHead(status, { "content-type": "application/json" })
        res.end(JSON.stringify(json))
      }
      const error = (status: number, type: string, reason: string) =>
        reply(status, { error: { root_cause: [{ type, reason }], type, reason }, status })
      if (req.method !== "POST" || !/\/_bulk(\?|$)/.test(path)) return error(404, "not_found", `no handler for ${req.method} ${path}`)
      const contentType = String(req.headers["content-type"] ?? "").split(";")[0]
      if (contentType !== "application/x-ndjson" && contentType !== "application/json") {
        return reply(406, { error: `Content-Type header [${contentType}] is not supported`, status: 406 })
      }
      if (fake.expectAuthorization !== undefined && req.headers.authorization !== fake.expectAuthorization) {
        return error(401, "security_exception", "unable to authenticate user for REST request [/_bulk]")
      }
      if (wholeFailures > 0) {
        wholeFailures--
        return error(wholeStatus, wholeStatus === 429 ? "es_rejected_execution_exception" : "cluster_block_exception", `scripted ${wholeStatus}`)
      }
      try {
        const result = bulk(path, body)
        if (lostAnswers > 0) {
          lostAnswers--
          return error(503, "unavailable", "indexed, but the answer is lost on the way")
        }
        reply(200, { took: 1, ...result })
      } catch (e) {
        if (e instanceof RequestError) return error(e.status, e.type, e.message)
        throw e
      }
    })
  }

  const fake: FakeElasticsearch = {
    get port() {
      return port
    },
    indexed,
    requests,
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
    start: () =>
      new Promise((resolve, reject) => {
        server = options.tls === undefined ? Http.createServer(handler) : Https.createServer(options.tls, handler)
        server.keepAliveTimeout = 200
        server.once("error", reject)
        server.listen(port, "127.0.0.1", () => {
          port = (server!.address() as AddressInfo).port
          resolve()
        })
      }),
    stop: () =>
      new Promise((resolve) => {
        if (server === undefined) return resolve()
        server.closeAllConnections()
        server.close(() => resolve())
        server = undefined
      })
  }
  await fake.start()
  return fake
}
