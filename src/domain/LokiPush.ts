/**
 * Packets as a Loki push request (`POST /loki/api/v1/push`, JSON), and what Loki's refusals say.
 *
 *   {"streams":[{"stream":{"app":"web.shop"},"values":[["<unix ns>","<line>",{"level":"info",…}],…]}]}
 *
 * - One stream per label set. Labels are few and low-cardinality by default: `app` = the hostname
 *   (what logtrain routes by; for Kubernetes logs the app, `name.namespace`), plus those chosen
 *   with `?labels=` from `level`, `facility`, `tag`, `namespace`, `pod`, `container` (`tag` and
 *   `pod` change with every pod: many streams). A label whose value is unknown or empty is left out.
 * - The other fields ride along as Loki 3 structured metadata (`level`, `tag`, `facility`,
 *   `procid`, `msgid`, `structured_data`, `namespace`, `pod`, `container`, each when it has a
 *   value), or, with `metadata=line`, in front of the message as logfmt (`level=info tag=web-1
 *   msg="…"`) for Lokis without structured metadata.
 * - `level` in Loki's own words: debug, info (informational and notice), warn, error, critical
 *   (crit, alert, emerg), so Grafana's level filters work.
 * - Entries of a stream are sorted by time, as Loki requires. Packets keep milliseconds; entries of
 *   a stream within the same millisecond get consecutive nanoseconds (counting on across batches),
 *   so Loki neither sees them out of order nor drops identical lines as duplicates.
 */
import { type LogPacket } from "./LogPacket.ts"
import type { LokiLabel } from "./DrainUrl.ts"

/** Loki's level names, by syslog severity. */
export const levels: ReadonlyArray<string> = ["critical", "critical", "critical", "error", "warn", "info", "info", "debug"]

/** Syslog facility keywords (RFC 5424 §6.2.1, as syslog.conf names them). */
export const facilities: ReadonlyArray<string> = [
  "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "security",
  "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"
]

/** Loki refuses label values longer than this by default (`max_label_value_length`). */
const MAX_LABEL_VALUE = 1024

export interface PushOptions {
  readonly labels: ReadonlyArray<LokiLabel>
  readonly metadata: "structured" | "line"
}

/** What a stream's last entry was, so the next batch's entries continue after it. */
export interface StreamClock {
  ms: number
  /** The next nanosecond offset to use within `ms`. */
  next: number
}

/** Streams remembered for their clocks; past this many, the oldest are forgotten (only ties across batches lose). */
const MAX_CLOCKS = 10_000

const fieldOf = (packet: LogPacket, name: LokiLabel | "procid" | "msgid" | "structured_data"): string | undefined => {
  switch (name) {
    case "level":
      return levels[packet.severity]
    case "facility":
      return facilities[packet.facility]
    case "tag":
      return packet.tag
    case "namespace":
      return packet.kubernetes?.namespace
    case "pod":
      return packet.kubernetes?.pod
    case "container":
      return packet.kubernetes?.container
    case "procid":
      return packet.procId
    case "msgid":
      return packet.msgId
    case "structured_data":
      return packet.structuredData
  }
}

const METADATA = ["level", "tag", "facility", "procid", "msgid", "structured_data", "namespace", "pod", "container"] as const

const labelValue = (value: string): string => (value.length > MAX_LABEL_VALUE ? value.slice(0, MAX_LABEL_VALUE) : value)

/** A logfmt value: bare when it can be, else quoted with `\`, `"` and line breaks escaped. */
const logfmt = (value: string): string =>
  value !== "" && !/[\s="\\]/.test(value)
    ? value
    : `"${value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t")}"`

interface Entry {
  readonly ms: number
  readonly order: number
  readonly line: string
  readonly metadata: Record<string, string> | undefined
}

interface Stream {
  readonly key: string
  readonly labels: Record<string, string>
  readonly entries: Array<Entry>
}

/**
 * The push request for a batch, as JSON text. `clocks` (one per drain sender) carries each
 * stream's last timestamp to the next batch.
 */
export const encode = (batch: ReadonlyArray<LogPacket>, options: PushOptions, clocks: Map<string, StreamClock>): string => {
  const streams = new Map<string, Stream>()
  const metadataKeys = METADATA.filter((name) => !(options.labels as ReadonlyArray<string>).includes(name))
  for (let i = 0; i < batch.length; i++) {
    const packet = batch[i]!
    const labels: Record<string, string> = { app: labelValue(packet.hostname === "" ? "-" : packet.hostname) }
    let key = labels.app!
    for (const name of options.labels) {
      const value = fieldOf(packet, name)
      if (value === undefined || value === "") continue
      labels[name] = labelValue(value)
      key += `\u0000${name}=${labels[name]}`
    }
    let stream = streams.get(key)
    if (stream === undefined) {
      stream = { key, labels, entries: [] }
      streams.set(key, stream)
    }
    let line = packet.message
    let metadata: Record<string, string> | undefined
    if (options.metadata === "structured") {
      for (const name of metadataKeys) {
        const value = fieldOf(packet, name)
        if (value === undefined || value === "") continue
        ;(metadata ??= {})[name] = value
      }
    } else {
      let prefix = ""
      for (const name of metadataKeys) {
        const value = fieldOf(packet, name)
        if (value !== undefined && value !== "") prefix += `${name}=${logfmt(value)} `
      }
      line = `${prefix}msg=${logfmt(packet.message)}`
    }
    const ms = packet.time.getTime()
    stream.entries.push({ ms: Number.isFinite(ms) && ms > 0 ? ms : 0, order: i, line, metadata })
  }

  const out: Array<string> = []
  for (const stream of streams.values()) {
    stream.entries.sort((a, b) => a.ms - b.ms || a.order - b.order)
    let clock = clocks.get(stream.key)
    const values: Array<string> = []
    for (const entry of stream.entries) {
      if (clock === undefined || entry.ms > clock.ms) clock = { ms: entry.ms, next: 0 }
      // An entry older than the stream's last one keeps its own time (Loki decides); ties count on.
      const offset = entry.ms === clock.ms && clock.next < 1_000_000 ? clock.next++ : 0
      const ns = entry.ms === 0 ? String(offset) : `${entry.ms}${String(offset).padStart(6, "0")}`
      values.push(
        entry.metadata === undefined
          ? `[${JSON.stringify(ns)},${JSON.stringify(entry.line)}]`
          : `[${JSON.stringify(ns)},${JSON.stringify(entry.line)},${JSON.stringify(entry.metadata)}]`
      )
    }
    if (clock !== undefined) {
      clocks.delete(stream.key)
      clocks.set(stream.key, clock)
      if (clocks.size > MAX_CLOCKS) clocks.delete(clocks.keys().next().value!)
    }
    out.push(`{"stream":${JSON.stringify(stream.labels)},"values":[${values.join(",")}]}`)
  }
  return `{"streams":[${out.join(",")}]}`
}

/** What Loki's words say it refused: how many entries, and its reason (`loki_discarded_samples_total`'s). */
export interface Refusal {
  readonly reason: string
  /** Entries refused; undefined when the answer does not say (the whole batch, as far as can be told). */
  readonly count: number | undefined
}

/** Loki's messages (pkg/validation) and the reasons it counts them under. */
const REASONS: ReadonlyArray<readonly [RegExp, string, "entry" | "batch"]> = [
  [/entry out of order/, "out_of_order", "entry"],
  [/entry too far behind/, "too_far_behind", "entry"],
  [/Max entry size '\d+' bytes exceeded/, "line_too_long", "entry"],
  [/has timestamp too old/, "greater_than_max_sample_age", "entry"],
  [/has timestamp too new/, "too_far_in_future", "entry"],
  [/label names; limit/, "max_label_names_per_series", "batch"],
  [/has label name too long/, "label_name_too_long", "batch"],
  [/has label value too long/, "label_value_too_long", "batch"],
  [/has duplicate label name/, "duplicate_label_names", "batch"],
  [/structured metadata, but this feature is disallowed/, "disallowed_structured_metadata", "batch"],
  [/structured metadata too large/, "structured_metadata_too_large", "batch"],
  [/too many structured metadata/, "structured_metadata_too_many", "batch"],
  [/at least one label pair is required/, "missing_labels", "batch"],
  [/Error parsing labels/, "invalid_labels", "batch"],
  [/request body too large/, "request_body_too_large", "batch"]
]

/**
 * Reads a 400 answer. Loki keeps the valid entries of a request it answers 400; its message says
 * how many it ignored (`total ignored: N out of M`, per stream) or lists one error per entry. When
 * it says neither, the whole batch counts as refused.
 */
export const readRefusal = (body: string): Refusal => {
  let reason = "http_400"
  let kind: "entry" | "batch" = "batch"
  let pattern: RegExp | undefined
  for (const [re, name, scope] of REASONS) {
    if (re.test(body)) {
      reason = name
      kind = scope
      pattern = re
      break
    }
  }
  let ignored = 0
  let said = false
  for (const match of body.matchAll(/total ignored: (\d+) out of \d+/g)) {
    ignored += Number(match[1])
    said = true
  }
  if (said) return { reason, count: ignored }
  if (kind === "entry" && pattern !== undefined) {
    const n = body.split("\n").filter((line) => pattern.test(line)).length
    return { reason, count: n > 0 ? n : undefined }
  }
  return { reason, count: undefined }
}
