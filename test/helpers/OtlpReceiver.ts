/**
 * A stand-in OTLP/HTTP logs receiver (an OpenTelemetry Collector's otlphttp receiver, as far as a
 * sender can tell): `POST /v1/logs` with a protobuf or JSON `ExportLogsServiceRequest`, plain or
 * gzip, decoded with the official opentelemetry-proto definitions (test/fixtures/otlp, loaded by
 * protobufjs — an implementation independent of logtrain's). It answers as the OTLP spec says:
 * 200 with an `ExportLogsServiceResponse` (optionally a partial success), errors with a
 * `google.rpc.Status` in the request's encoding, `Retry-After` when told.
 *
 * It can be taken down and up again on the same port, made to answer a status, or to reject part
 * of each request.
 */
import * as Http from "node:http"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import protobuf from "protobufjs"
import * as StandInServer from "./StandInServer.ts"

const fixtures = join(import.meta.dirname, "../fixtures/otlp")

const root = new protobuf.Root()
root.resolvePath = (_origin, target) => join(fixtures, target)
root.loadSync(["opentelemetry/proto/collector/logs/v1/logs_service.proto", "google/rpc/status.proto"])

export const ExportLogsServiceRequest = root.lookupType("opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest")
export const ExportLogsServiceResponse = root.lookupType("opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse")
export const Status = root.lookupType("google.rpc.Status")

/** How decoded messages are turned into plain objects: 64-bit integers as decimal strings, enums as numbers. */
export const toObjectOptions: protobuf.IConversionOptions = { longs: String, enums: Number, bytes: String, defaults: false }

/** An AnyValue as a plain value (what the tests compare). */
export const plain = (value: Record<string, unknown> | undefined): unknown => {
  if (value === undefined) return undefined
  if ("stringValue" in value) return value.stringValue
  if ("intValue" in value) return Number(value.intValue)
  if ("boolValue" in value) return value.boolValue
  if ("doubleValue" in value) return value.doubleValue
  if ("arrayValue" in value) return ((value.arrayValue as { values?: Array<Record<string, unknown>> }).values ?? []).map(plain)
  if ("kvlistValue" in value) return attributes((value.kvlistValue as { values?: Array<KeyValue> }).values)
  if ("bytesValue" in value) return value.bytesValue
  return undefined
}

interface KeyValue {
  readonly key: string
  readonly value?: Record<string, unknown>
}

export const attributes = (kvs: ReadonlyArray<KeyValue> | undefined): Record<string, unknown> =>
  Object.fromEntries((kvs ?? []).map((kv) => [kv.key, plain(kv.value)]))

/** One log record as received, flattened with its resource and scope. */
export interface ReceivedRecord {
  readonly resource: Record<string, unknown>
  readonly scope: string
  readonly timeUnixNano: string | undefined
  readonly observedTimeUnixNano: string | undefined
  readonly severityNumber: number | undefined
  readonly severityText: string | undefined
  readonly body: unknown
  readonly attributes: Record<string, unknown>
}

export interface ReceivedRequest {
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly encoding: "protobuf" | "json"
  readonly records: ReadonlyArray<ReceivedRecord>
}

export interface Answer {
  readonly status: number
  readonly retryAfter?: string | undefined
  readonly message?: string | undefined
}

export interface OtlpReceiver {
  readonly port: number
  readonly url: string
  /** Requests answered 200 (with the records they carried, rejected ones included). */
  readonly requests: Array<ReceivedRequest>
  /** Every request, with the status it got. */
  readonly attempts: Array<{ readonly status: number; readonly records: number; readonly at: number }>
  /** Records accepted (answered 200, minus those reported rejected), in order of arrival. */
  readonly records: () => Array<ReceivedRecord>
  /** What to answer instead of 200 (a status, a Retry-After, a Status message); undefined answers 200. */
  answer: Answer | ((attempt: number) => Answer | undefined) | undefined
  /** Rejects this many records of each request (the last ones) in a partial success. */
  rejectPerRequest: number
  stop(): Promise<void>
  start(): Promise<void>
}

const decode = (body: Buffer, contentType: string): { encoding: "protobuf" | "json"; message: DecodedLogs } => {
  if (contentType.startsWith("application/x-protobuf")) {
    const message = ExportLogsServiceRequest.decode(body)
    return { encoding: "protobuf", message: ExportLogsServiceRequest.toObject(message, toObjectOptions) }
  }
  if (contentType.startsWith("application/json")) {
    const json = JSON.parse(body.toString("utf8")) as Record<string, unknown>
    // OTLP/JSON: lowerCamelCase keys only ("original field names are not valid"), enums as integers.
    const check = (value: unknown): void => {
      if (Array.isArray(value)) return value.forEach(check)
      if (typeof value !== "object" || value === null) return
      for (const [key, inner] of Object.entries(value)) {
        if (key.includes("_")) throw new Error(`${key}: not a lowerCamelCase field name`)
        if (key === "severityNumber" && typeof inner !== "number") throw new Error("severityNumber: not an integer")
        check(inner)
      }
    }
    check(json)
    const message = ExportLogsServiceRequest.fromObject(json)
    return { encoding: "json", message: ExportLogsServiceRequest.toObject(message, toObjectOptions) }
  }
  throw new Error(`unsupported content type ${contentType}`)
}

interface DecodedRecord {
  readonly timeUnixNano?: string
  readonly observedTimeUnixNano?: string
  readonly severityNumber?: number
  readonly severityText?: string
  readonly body?: Record<string, unknown>
  readonly attributes?: ReadonlyArray<KeyValue>
}

interface DecodedLogs {
  readonly resourceLogs?: ReadonlyArray<{
    readonly resource?: { readonly attributes?: ReadonlyArray<KeyValue> }
    readonly scopeLogs?: ReadonlyArray<{ readonly scope?: { readonly name?: string }; readonly logRecords?: ReadonlyArray<DecodedRecord> }>
  }>
}

const flatten = (message: DecodedLogs): Array<ReceivedRecord> => {
  const out: Array<ReceivedRecord> = []
  for (const rl of message.resourceLogs ?? []) {
    const resource = attributes(rl.resource?.attributes)
    for (const sl of rl.scopeLogs ?? []) {
      for (const r of sl.logRecords ?? []) {
        out.push({
          resource,
          scope: sl.scope?.name ?? "",
          timeUnixNano: r.timeUnixNano,
          observedTimeUnixNano: r.observedTimeUnixNano,
          severityNumber: r.severityNumber,
          severityText: r.severityText,
          body: plain(r.body),
          attributes: attributes(r.attributes)
        })
      }
    }
  }
  return out
}

const reply = (res: Http.ServerResponse, encoding: "protobuf" | "json", status: number, body: Uint8Array | string, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": encoding === "json" ? "application/json" : "application/x-protobuf", ...headers })
  res.end(body)
}
const status = (encoding: "protobuf" | "json", code: number, message: string) =>
  encoding === "json" ? JSON.stringify({ code, message }) : Status.encode(Status.create({ code, message })).finish()

export const listen = async (options: { readonly port?: number; readonly path?: string } = {}): Promise<OtlpReceiver> => {
  const path = options.path ?? "/v1/logs"
  const requests: Array<ReceivedRequest> = []
  const accepted: Array<ReceivedRecord> = []
  const attempts: Array<{ status: number; records: number; at: number }> = []

  const handler: Http.RequestListener = (req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const contentType = req.headers["content-type"] ?? ""
      const encoding = contentType.startsWith("application/json") ? "json" : "protobuf"
      if (req.method !== "POST" || new URL(req.url ?? "/", "http://x").pathname !== path) {
        attempts.push({ status: 404, records: 0, at: Date.now() })
        return reply(res, encoding, 404, status(encoding, 5, `no such path ${req.url}`))
      }
      let decoded: ReturnType<typeof decode>
      try {
        const raw = Buffer.concat(chunks)
        decoded = decode(req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw, contentType)
      } catch (error) {
        attempts.push({ status: 400, records: 0, at: Date.now() })
        return reply(res, encoding, 400, status(encoding, 3, `cannot decode the request: ${(error as Error).message}`))
      }
      const records = flatten(decoded.message)
      const answer = typeof receiver.answer === "function" ? receiver.answer(attempts.length) : receiver.answer
      attempts.push({ status: answer?.status ?? 200, records: records.length, at: Date.now() })
      if (answer !== undefined && answer.status !== 200) {
        return reply(
          res,
          encoding,
          answer.status,
          status(encoding, 14, answer.message ?? `answering ${answer.status} on purpose`),
          answer.retryAfter === undefined ? {} : { "retry-after": answer.retryAfter }
        )
      }
      requests.push({ path: req.url ?? "", headers: req.headers, encoding: decoded.encoding, records })
      const rejected = Math.min(receiver.rejectPerRequest, records.length)
      accepted.push(...records.slice(0, records.length - rejected))
      if (rejected === 0) {
        return reply(res, encoding, 200, encoding === "json" ? "{}" : ExportLogsServiceResponse.encode({}).finish())
      }
      const partialSuccess = { rejectedLogRecords: rejected, errorMessage: `${rejected} records refused on purpose` }
      return reply(
        res,
        encoding,
        200,
        encoding === "json"
          ? JSON.stringify({ partialSuccess: { rejectedLogRecords: String(rejected), errorMessage: partialSuccess.errorMessage } })
          : ExportLogsServiceResponse.encode(ExportLogsServiceResponse.fromObject({ partialSuccess })).finish()
      )
    })
  }

  const http = StandInServer.make(handler, { port: options.port })
  const receiver: OtlpReceiver = {
    get port() {
      return http.port
    },
    get url() {
      return `http://127.0.0.1:${http.port}${path}`
    },
    requests,
    attempts,
    records: () => accepted,
    answer: undefined,
    rejectPerRequest: 0,
    start: http.start,
    stop: http.stop
  }
  await receiver.start()
  return receiver
}
