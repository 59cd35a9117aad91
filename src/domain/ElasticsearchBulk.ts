/**
 * The Elasticsearch `_bulk` API, as far as logtrain speaks it: documents, request bodies, and what
 * a response says about each item.
 *
 * Each document is sent with a `create` action naming its index and an `_id` that the drain keeps
 * for the document across retries. So when a retried request repeats documents Elasticsearch has
 * already indexed, it answers 409 for them instead of indexing them twice — and 409 counts as
 * delivered. (The original sent an action with a `_source` key, which Elasticsearch rejects, and
 * ids from the clock, which collided.)
 */
import { excerpt } from "./Excerpt.ts"
import type { LogPacket } from "./LogPacket.ts"
import { formatTimestamp } from "./syslog/Rfc5424.ts"

export interface BulkItem {
  readonly id: string
  readonly index: string
  readonly packet: LogPacket
}

/**
 * The index of a packet: the configured one, or — as the original — the packet's hostname, made a
 * valid index name (lower case; `\ / * ? " < > | , # :` and spaces become `-`; no leading `-_+`).
 */
export const indexFor = (packet: LogPacket, configured: string | undefined): string => {
  if (configured !== undefined) return configured
  const name = packet.hostname.toLowerCase().replace(/[\\/*?"<>|,#:\s]/g, "-").replace(/^[-_+.]+/, "")
  return name.length === 0 ? "logtrain" : name.slice(0, 255)
}

/** The document of a packet: the original's fields. */
export const document = (packet: LogPacket): string =>
  JSON.stringify({
    "@timestamp": formatTimestamp(packet.time),
    hostname: packet.hostname,
    tag: packet.tag,
    message: packet.message,
    severity: packet.severity,
    facility: packet.facility
  })

/** A `_bulk` body: action and document lines, ending with the newline Elasticsearch requires. */
export const encode = (items: ReadonlyArray<BulkItem>): string => {
  let body = ""
  for (const item of items) {
    body += `${JSON.stringify({ create: { _index: item.index, _id: item.id } })}\n${document(item.packet)}\n`
  }
  return body
}

/**
 * The most of a `_bulk` answer read, for a request of `items` documents and `requestBytes` bytes.
 * Elasticsearch answers every document with an item, and the drain needs them all, so the answer
 * is read whole up to this bound. Measured against the stand-in, which answers with Elasticsearch
 * 8's fields: 1000 documents of ~350 bytes answered 201 take 215 KiB; all 409, 353 KiB; a mix of
 * 201/429/400/503, 320 KiB; all 400 `mapper_parsing_exception` into a 216-character index name,
 * 575 KiB (5000 created: 985 KiB). An item is at most ~1 KiB of Elasticsearch's own words (two
 * 255-character index names, the id, the reasons) plus, for a mapping error, a preview of the
 * refused value, quoted twice (`reason`, `caused_by`) — at most twice the request. So:
 * 64 KiB + 2 KiB per item + twice the request: 2.7 MiB for 1000 documents of 350 bytes, eight times
 * the largest answer measured, and an answer can never legitimately be larger.
 */
export const answerLimit = (items: number, requestBytes: number): number => 64 * 1024 + 2048 * items + 2 * requestBytes

export type ItemOutcome =
  | { readonly _tag: "Delivered" }
  /** Worth sending again: 429 (too many requests) or a 5xx. */
  | { readonly _tag: "Retry"; readonly status: number; readonly type: string }
  /** Refused for good (a mapping error, an invalid index…): resending cannot help. */
  | { readonly _tag: "Rejected"; readonly status: number; readonly type: string; readonly reason: string }

export type BulkOutcome =
  | { readonly _tag: "Items"; readonly items: ReadonlyArray<ItemOutcome> }
  | { readonly _tag: "Retry"; readonly detail: string }
  | { readonly _tag: "Rejected"; readonly detail: string }

interface ItemResult {
  readonly status?: number
  readonly error?: { readonly type?: string; readonly reason?: string }
}

const retryable = (status: number) => status === 429 || status >= 500

/**
 * What a `_bulk` answer says about a request of `count` items. Words from the answer are shown as
 * short excerpts with `secrets` and anything credential-like masked (see Excerpt); error types,
 * which become metric labels, only when they look like Elasticsearch's (`snake_case`).
 */
export const readResponse = (status: number, body: string, count: number, secrets: ReadonlyArray<string> = []): BulkOutcome => {
  if (status < 200 || status >= 300) {
    const detail = `HTTP ${status}: ${errorSummary(body, secrets)}`
    return retryable(status) || status === 408 ? { _tag: "Retry", detail } : { _tag: "Rejected", detail }
  }
  if (ALL_DONE.test(body.slice(0, 64)) && countOf(body, '"status":') === count) {
    // Nothing failed (Elasticsearch says so first, and there is one status per item): no need to
    // parse a few hundred KiB into a thousand objects only to find that out.
    return { _tag: "Items", items: Array.from({ length: count }, () => DELIVERED) }
  }
  let parsed: { readonly items?: ReadonlyArray<Record<string, ItemResult>> }
  try {
    parsed = JSON.parse(body)
  } catch {
    return { _tag: "Retry", detail: `the _bulk answer is not JSON: ${excerpt(body, secrets, 120)}` }
  }
  const items = parsed.items
  if (!Array.isArray(items) || items.length !== count) {
    return { _tag: "Retry", detail: `the _bulk answer has ${Array.isArray(items) ? items.length : "no"} items for ${count} sent` }
  }
  return {
    _tag: "Items",
    items: items.map((item): ItemOutcome => {
      const result: ItemResult = Object.values(item)[0] ?? {}
      const itemStatus = result.status ?? 0
      // 409 on create: the document is already there (a retry of one that got through).
      if ((itemStatus >= 200 && itemStatus < 300) || itemStatus === 409) return DELIVERED
      const type = typeof result.error?.type === "string" && ERROR_TYPE.test(result.error.type)
        ? result.error.type
        : `http_${itemStatus}`
      if (retryable(itemStatus)) return { _tag: "Retry", status: itemStatus, type }
      return { _tag: "Rejected", status: itemStatus, type, reason: excerpt(String(result.error?.reason ?? ""), secrets) }
    })
  }
}

const DELIVERED: ItemOutcome = { _tag: "Delivered" }

/** The start of an answer whose every item succeeded: `errors: false`, first (8.x) or after `took` (7.x). */
const ALL_DONE = /^\{\s*(?:"took"\s*:\s*\d+\s*,\s*)?"errors"\s*:\s*false\s*[,}]/

const countOf = (text: string, part: string): number => {
  let n = 0
  for (let at = text.indexOf(part); at >= 0; at = text.indexOf(part, at + part.length)) n++
  return n
}

/** Elasticsearch's error types: `snake_case` words. Anything else is not shown as one. */
const ERROR_TYPE = /^[a-z][a-z0-9_]{0,63}$/

/** A one-line summary of an Elasticsearch error body. */
const errorSummary = (body: string, secrets: ReadonlyArray<string>): string => {
  try {
    const error = JSON.parse(body)?.error
    if (typeof error === "object" && error !== null) {
      const type = typeof error.type === "string" && ERROR_TYPE.test(error.type) ? error.type : "error"
      return `${type}: ${excerpt(String(error.reason ?? ""), secrets)}`
    }
    if (typeof error === "string") return excerpt(error, secrets)
  } catch {
    // not JSON: fall through
  }
  return excerpt(body, secrets)
}
