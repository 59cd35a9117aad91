/**
 * The answers of OTLP/HTTP: `ExportLogsServiceResponse` (with its partial success) on 200, and a
 * `google.rpc.Status` on 4xx/5xx — each in protobuf or JSON, the request's encoding. Read by the
 * OTLP drain, written by the OTLP input.
 *
 *   message ExportLogsServiceResponse { ExportLogsPartialSuccess partial_success = 1; }
 *   message ExportLogsPartialSuccess { int64 rejected_log_records = 1; string error_message = 2; }
 *   message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
 */
import { Buffer } from "node:buffer"
import { ProtobufError, Reader, WireType, Writer } from "./Protobuf.ts"

export type Encoding = "protobuf" | "json"

export const contentTypes: Readonly<Record<Encoding, string>> = {
  protobuf: "application/x-protobuf",
  json: "application/json"
}

export interface PartialSuccess {
  readonly rejected: number
  readonly message: string
}

/** An ExportLogsServiceResponse; `partial` unset for a full success. */
export const encodeResponse = (encoding: Encoding, partial?: PartialSuccess): Uint8Array | string => {
  if (encoding === "json") {
    return partial === undefined
      ? "{}"
      : JSON.stringify({ partialSuccess: { rejectedLogRecords: String(partial.rejected), errorMessage: partial.message } })
  }
  const w = new Writer(64 + (partial?.message.length ?? 0) * 3)
  if (partial !== undefined) {
    const at = w.begin(1)
    if (partial.rejected > 0) {
      w.tag(1, WireType.Varint)
      w.varint(partial.rejected)
    }
    if (partial.message !== "") w.string(2, partial.message)
    w.end(at)
  }
  return w.finish()
}

/**
 * The partial success of an answer's body, if it has one; undefined for a full success or a body
 * that is not a response at all (a receiver answering 200 with anything else delivered the batch).
 * A body cut short (the drain keeps only its start) still gives the count, which comes first.
 */
export const decodeResponse = (body: Uint8Array, contentType: string): PartialSuccess | undefined => {
  if (isJson(contentType, body)) {
    const text = Buffer.from(body).toString("utf8")
    let partial: unknown
    try {
      partial = (JSON.parse(text) as { partialSuccess?: unknown } | null)?.partialSuccess
    } catch {
      const cut = /"rejectedLogRecords"\s*:\s*"?(\d+)/.exec(text)
      return cut === null ? undefined : { rejected: Number(cut[1]), message: "" }
    }
    if (typeof partial !== "object" || partial === null) return undefined
    const { errorMessage, rejectedLogRecords } = partial as { rejectedLogRecords?: unknown; errorMessage?: unknown }
    const rejected = Number(rejectedLogRecords ?? 0)
    return {
      rejected: Number.isSafeInteger(rejected) && rejected > 0 ? rejected : 0,
      message: typeof errorMessage === "string" ? errorMessage : ""
    }
  }
  // Only an answer in OTLP's encodings is read; a 200 of another kind (a proxy's page) delivered the batch.
  if (contentType !== "" && !contentType.toLowerCase().includes("protobuf")) return undefined
  let found = false
  let rejected = 0
  let message = ""
  try {
    const r = new Reader(body)
    while (!r.done) {
      const { field, wireType } = r.tag()
      if (field !== 1 || wireType !== WireType.LengthDelimited) {
        r.skip(wireType)
        continue
      }
      found = true
      // Read within what is there: the count comes before the message.
      const length = r.varint()
      const m = new Reader(body, r.pos, Math.min(r.pos + length, r.end))
      r.pos = Math.min(r.pos + length, r.end)
      while (!m.done) {
        const t = m.tag()
        if (t.field === 1 && t.wireType === WireType.Varint) rejected = Number(BigInt.asIntN(64, m.varint64()))
        else if (t.field === 2 && t.wireType === WireType.LengthDelimited) message = m.string()
        else m.skip(t.wireType)
      }
    }
  } catch (error) {
    if (!(error instanceof ProtobufError)) throw error
  }
  return found ? { rejected: Math.max(0, rejected), message } : undefined
}

/** A google.rpc.Status (code 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE …). */
export const encodeStatus = (encoding: Encoding, code: number, message: string): Uint8Array | string => {
  if (encoding === "json") return JSON.stringify({ code, message })
  const w = new Writer(16 + message.length * 3)
  if (code !== 0) {
    w.tag(1, WireType.Varint)
    w.varint(code)
  }
  if (message !== "") w.string(2, message)
  return w.finish()
}

/** The message of an error answer: a Status's, or the body's text when it is not one (as proxies answer). */
export const statusMessage = (body: Uint8Array, contentType: string): string => {
  const text = () => Buffer.from(body).toString("utf8").replace(/\s+/g, " ").trim()
  try {
    if (isJson(contentType, body)) {
      const json = JSON.parse(Buffer.from(body).toString("utf8")) as { message?: unknown } | null
      return typeof json?.message === "string" ? json.message : text()
    }
    if (!contentType.toLowerCase().includes("protobuf")) return text()
    const r = new Reader(body)
    let message = ""
    while (!r.done) {
      const { field, wireType } = r.tag()
      if (field === 2 && wireType === WireType.LengthDelimited) message = r.string()
      else r.skip(wireType)
    }
    return message
  } catch {
    return text()
  }
}

const isJson = (contentType: string, body: Uint8Array): boolean =>
  contentType.toLowerCase().includes("json") || (contentType === "" && body[0] === 0x7b)
