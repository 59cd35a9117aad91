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

interface Stream {
  readonly key: string
  /** The stream's labels as JSON, written once. */
  readonly labels: string
  /** Its entries' times and texts (`"<line>"` or `"<line>",{…}`), in arrival order. */
  readonly times: Array<number>
  readonly texts: Array<string>
}

/** The metadata (or logfmt prefix) of a packet: consecutive packets of one source share it. */
const fieldsText = (packet: LogPacket, keys: ReadonlyArray<typeof METADATA[number]>, metadata: PushOptions["metadata"]): string => {
  let text = ""
  for (const name of keys) {
    const value = fieldOf(packet, name)
    if (value === undefined || value === "") continue
    text += metadata === "structured"
      ? `${text === "" ? "" : ","}${JSON.stringify(name)}:${JSON.stringify(value)}`
      : `${name}=${logfmt(value)} `
  }
  return metadata === "structured" && text !== "" ? `{${text}}` : text
}

/** Whether two packets have the same fields apart from time and message (so the same metadata). */
const sameFields = (a: LogPacket, b: LogPacket): boolean =>
  a.severity === b.severity && a.facility === b.facility && a.tag === b.tag && a.procId === b.procId &&
  a.msgId === b.msgId && a.structuredData === b.structuredData && a.kubernetes === b.kubernetes && a.hostname === b.hostname

/**
 * The push request for a batch, as JSON text. `clocks` (one per drain sender) carries each
 * stream's last timestamp to the next batch.
 */
export const encode = (batch: ReadonlyArray<LogPacket>, options: PushOptions, clocks: Map<string, StreamClock>): string => {
  const streams = new Map<string, Stream>()
  const metadataKeys = METADATA.filter((name) => !(options.labels as ReadonlyArray<string>).includes(name))
  let previous: LogPacket | undefined
  let stream: Stream | undefined
  let fields = ""
  for (let i = 0; i < batch.length; i++) {
    const packet = batch[i]!
    if (previous === undefined || !sameFields(previous, packet)) {
      // The stream: `app` and the chosen labels that have a value.
      const app = labelValue(packet.hostname === "" ? "-" : packet.hostname)
      let key = app
      for (const name of options.labels) {
        const value = fieldOf(packet, name)
        if (value !== undefined && value !== "") key += `\u0000${name}=${labelValue(value)}`
      }
      stream = streams.get(key)
      if (stream === undefined) {
        const labels: Record<string, string> = { app }
        for (const name of options.labels) {
          const value = fieldOf(packet, name)
          if (value !== undefined && value !== "") labels[name] = labelValue(value)
        }
        stream = { key, labels: JSON.stringify(labels), times: [], texts: [] }
        streams.set(key, stream)
      }
      fields = fieldsText(packet, metadataKeys, options.metadata)
      previous = packet
    }
    const ms = packet.time.getTime()
    stream!.times.push(Number.isFinite(ms) && ms > 0 ? ms : 0)
    stream!.texts.push(
      options.metadata === "line"
        ? JSON.stringify(`${fields}msg=${logfmt(packet.message)}`)
        : fields === ""
        ? JSON.stringify(packet.message)
        : `${JSON.stringify(packet.message)},${fields}`
    )
  }

  let out = ""
  for (const s of streams.values()) {
    // Sorted by time (stable: arrival order within a millisecond); most batches already are.
    let order: ReadonlyArray<number> | undefined
    for (let i = 1; i < s.times.length; i++) {
      if (s.times[i]! < s.times[i - 1]!) {
        order = s.times.map((_, j) => j).toSorted((a, b) => s.times[a]! - s.times[b]! || a - b)
        break
      }
    }
    let clock = clocks.get(s.key)
    let values = ""
    for (let k = 0; k < s.times.length; k++) {
      const j = order === undefined ? k : order[k]!
      const ms = s.times[j]!
      if (clock === undefined || ms > clock.ms) clock = { ms, next: 0 }
      // An entry older than the stream's last one keeps its own time (Loki decides); ties count on.
      const offset = ms === clock.ms && clock.next < 1_000_000 ? clock.next++ : 0
      const ns = ms === 0 ? String(offset) : `${ms}${offset === 0 ? "000000" : String(offset).padStart(6, "0")}`
      values += `${k === 0 ? "" : ","}["${ns}",${s.texts[j]}]`
    }
    if (clock !== undefined) {
      clocks.delete(s.key)
      clocks.set(s.key, clock)
      if (clocks.size > MAX_CLOCKS) clocks.delete(clocks.keys().next().value!)
    }
    out += `${out === "" ? "" : ","}{"stream":${s.labels},"values":[${values}]}`
  }
  return `{"streams":[${out}]}`
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
