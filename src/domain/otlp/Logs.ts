/**
 * Packets as OTLP logs: the `LogsData` of effect/observability (the shape OTLP/JSON writes as
 * is), and its protobuf encoding.
 *
 * Each packet is a LogRecord:
 * - `timeUnixNano` from the packet's time; `observedTimeUnixNano` given by the caller (packets do
 *   not carry their arrival time; the drain passes when it first sent the batch);
 * - `severityNumber` per the logs data model's syslog mapping (Appendix B: debug 5, info 9,
 *   notice 10, warning 13, err 17, crit 18, alert 19, emerg 21) and `severityText` the syslog
 *   keyword (`info`, `warning`, …), as the OpenTelemetry Collector's syslog receiver writes them;
 * - `body` the message;
 * - attributes `syslog.facility` (its number), `syslog.appname` (the tag), `syslog.procid`,
 *   `syslog.msgid`, `syslog.structured_data` (as received), each when present.
 *
 * Records are grouped by resource: `host.name` (the hostname logtrain routed by) and, for
 * Kubernetes sources that know them, `k8s.namespace.name`, `k8s.pod.name`, `k8s.container.name`,
 * `container.id`. One ScopeLogs per resource, scope `logtrain`.
 */
import type { OtlpLogger, OtlpResource } from "effect/observability"
import { Buffer } from "node:buffer"
import type { LogPacket } from "../LogPacket.ts"
import { varintSize, Writer, WireType } from "./Protobuf.ts"

export type LogsData = OtlpLogger.LogsData
type ResourceLogs = LogsData["resourceLogs"][number]
type ScopeLogs = ResourceLogs["scopeLogs"][number]
export type LogRecord = NonNullable<ScopeLogs["logRecords"]>[number]
type KeyValue = OtlpResource.KeyValue
type AnyValue = OtlpResource.AnyValue

/** OTLP SeverityNumber by syslog severity (0 emergency .. 7 debug). */
export const severityNumbers: ReadonlyArray<number> = [21, 19, 18, 17, 13, 10, 9, 5]

/** The syslog keywords, by severity. */
export const severityTexts: ReadonlyArray<string> = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]

export const SCOPE_NAME = "logtrain"

/** Nanoseconds since the epoch of a time in milliseconds, as the decimal string OTLP/JSON wants. */
export const nanosOf = (millis: number): string =>
  Number.isFinite(millis) && millis > 0 ? `${Math.floor(millis)}000000` : "0"

const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } })

const resourceOf = (packet: LogPacket): OtlpResource.Resource => {
  const attributes: Array<KeyValue> = [str("host.name", packet.hostname)]
  const k8s = packet.kubernetes
  if (k8s !== undefined) {
    if (k8s.namespace) attributes.push(str("k8s.namespace.name", k8s.namespace))
    if (k8s.pod) attributes.push(str("k8s.pod.name", k8s.pod))
    if (k8s.container) attributes.push(str("k8s.container.name", k8s.container))
    if (k8s.containerId) attributes.push(str("container.id", k8s.containerId))
  }
  return { attributes, droppedAttributesCount: 0 }
}

export const recordOf = (packet: LogPacket, observedTimeUnixNano: string): LogRecord => {
  const attributes: Array<KeyValue> = [{ key: "syslog.facility", value: { intValue: packet.facility } }]
  if (packet.tag !== "") attributes.push(str("syslog.appname", packet.tag))
  if (packet.procId !== undefined) attributes.push(str("syslog.procid", packet.procId))
  if (packet.msgId !== undefined) attributes.push(str("syslog.msgid", packet.msgId))
  if (packet.structuredData !== undefined) attributes.push(str("syslog.structured_data", packet.structuredData))
  return {
    timeUnixNano: nanosOf(packet.time.getTime()),
    observedTimeUnixNano,
    severityNumber: severityNumbers[packet.severity] as NonNullable<LogRecord["severityNumber"]>,
    severityText: severityTexts[packet.severity]!,
    body: { stringValue: packet.message },
    attributes,
    droppedAttributesCount: 0
  }
}

/** The export request for a batch, one ResourceLogs per distinct resource, in order of first appearance. */
export const fromPackets = (batch: ReadonlyArray<LogPacket>, observedTimeUnixNano: string): LogsData => {
  const groups = new Map<string, Array<LogRecord>>()
  const resourceLogs: Array<ResourceLogs> = []
  // Packets of one source come in runs sharing hostname and Kubernetes object: look up once per run.
  let lastHostname: string | undefined
  let lastKubernetes: LogPacket["kubernetes"] = undefined
  let records: Array<LogRecord> | undefined
  for (const packet of batch) {
    if (records === undefined || packet.hostname !== lastHostname || packet.kubernetes !== lastKubernetes) {
      const k8s = packet.kubernetes
      const key = k8s === undefined
        ? packet.hostname
        : `${packet.hostname}\u0000${k8s.namespace ?? ""}\u0000${k8s.pod ?? ""}\u0000${k8s.container ?? ""}\u0000${k8s.containerId ?? ""}`
      records = groups.get(key)
      if (records === undefined) {
        records = []
        groups.set(key, records)
        resourceLogs.push({ resource: resourceOf(packet), scopeLogs: [{ scope: { name: SCOPE_NAME }, logRecords: records }] })
      }
      lastHostname = packet.hostname
      lastKubernetes = packet.kubernetes
    }
    records.push(recordOf(packet, observedTimeUnixNano))
  }
  return { resourceLogs }
}

// ---------------------------------------------------------------------------------------------
// Protobuf (ExportLogsServiceRequest = LogsData on the wire), field for field as Effect's encoder.

const fixed64 = (w: Writer, field: number, value: OtlpResource.Fixed64): void => {
  w.tag(field, WireType.Fixed64)
  if (typeof value === "object") w.fixed64(value.low, value.high)
  else w.fixed64Big(BigInt(value))
}

const anyValue = (w: Writer, value: AnyValue): void => {
  if (value.stringValue !== undefined && value.stringValue !== null) return w.string(1, value.stringValue)
  if (value.boolValue !== undefined && value.boolValue !== null) {
    w.tag(2, WireType.Varint)
    return w.varint(value.boolValue ? 1 : 0)
  }
  if (value.intValue !== undefined && value.intValue !== null) {
    w.tag(3, WireType.Varint)
    const n = value.intValue
    return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? w.varint(n) : w.varint64(BigInt(n))
  }
  if (value.doubleValue !== undefined && value.doubleValue !== null) {
    w.tag(4, WireType.Fixed64)
    return w.double(value.doubleValue)
  }
  if (value.arrayValue !== undefined) {
    const at = w.begin(5)
    for (const item of value.arrayValue.values) message(w, 1, item, anyValue)
    return w.end(at)
  }
  if (value.kvlistValue !== undefined) {
    const at = w.begin(6)
    for (const kv of value.kvlistValue.values) message(w, 1, kv, keyValue)
    return w.end(at)
  }
  if (value.bytesValue !== undefined) w.bytes(7, value.bytesValue)
}

const keyValue = (w: Writer, kv: KeyValue): void => {
  w.string(1, kv.key)
  message(w, 2, kv.value, anyValue)
}

const message = <A>(w: Writer, field: number, value: A, encode: (w: Writer, value: A) => void): void => {
  const at = w.begin(field)
  encode(w, value)
  w.end(at)
}

const optionalString = (w: Writer, field: number, value: string | null | undefined): void => {
  if (value !== undefined && value !== null && value !== "") w.string(field, value)
}

const hexBytes = (hex: string | Uint8Array): Uint8Array =>
  typeof hex === "string" ? Uint8Array.from({ length: hex.length / 2 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16)) : hex

const logRecord = (w: Writer, r: LogRecord): void => {
  fixed64(w, 1, r.timeUnixNano)
  if (r.severityNumber !== undefined) {
    w.tag(2, WireType.Varint)
    w.varint(r.severityNumber)
  }
  optionalString(w, 3, r.severityText)
  if (r.body !== undefined) message(w, 5, r.body, anyValue)
  for (const kv of r.attributes) message(w, 6, kv, keyValue)
  if (r.droppedAttributesCount > 0) {
    w.tag(7, WireType.Varint)
    w.varint(r.droppedAttributesCount)
  }
  if (r.flags !== undefined) {
    w.tag(8, WireType.Fixed32)
    w.fixed32(r.flags)
  }
  if (r.traceId !== undefined && r.traceId !== "") w.bytes(9, hexBytes(r.traceId))
  if (r.spanId !== undefined && r.spanId !== "") w.bytes(10, hexBytes(r.spanId))
  if (r.observedTimeUnixNano !== undefined) fixed64(w, 11, r.observedTimeUnixNano)
}

const scope = (w: Writer, s: NonNullable<ScopeLogs["scope"]>): void => {
  w.string(1, s.name)
  optionalString(w, 2, s.version)
  for (const kv of s.attributes ?? []) message(w, 3, kv, keyValue)
  if (s.droppedAttributesCount) {
    w.tag(4, WireType.Varint)
    w.varint(s.droppedAttributesCount)
  }
}

const scopeLogs = (w: Writer, s: ScopeLogs): void => {
  message(w, 1, s.scope!, scope)
  for (const r of s.logRecords ?? []) message(w, 2, r, logRecord)
  optionalString(w, 3, s.schemaUrl)
}

const resource = (w: Writer, r: OtlpResource.Resource): void => {
  for (const kv of r.attributes) message(w, 1, kv, keyValue)
  if (r.droppedAttributesCount > 0) {
    w.tag(2, WireType.Varint)
    w.varint(r.droppedAttributesCount)
  }
}

const resourceLogs = (w: Writer, r: ResourceLogs): void => {
  message(w, 1, r.resource!, resource)
  for (const s of r.scopeLogs) message(w, 2, s, scopeLogs)
  optionalString(w, 3, r.schemaUrl)
}

/** `LogsData` (the body of an OTLP/HTTP logs request) in protobuf. */
export const encodeProtobuf = (data: LogsData, sizeHint = 64 * 1024): Uint8Array => {
  const w = new Writer(sizeHint)
  for (const r of data.resourceLogs) message(w, 1, r, resourceLogs)
  return w.finish()
}

// ---------------------------------------------------------------------------------------------
// Protobuf straight from packets: the bytes `encodeProtobuf(fromPackets(batch, nanosOf(observed)))`
// gives (a test holds them equal), without the objects in between. This is the drain's hot path:
// sizes are computed, not measured by moving bytes, and times go from milliseconds to fixed64
// halves without BigInt or strings.

const utf8 = (s: string): number => Buffer.byteLength(s, "utf8")

/** Bytes of a length-delimited field of `length` bytes, its tag (one byte: field < 16) included. */
const delimited = (length: number): number => 1 + varintSize(length) + length

/** A string AnyValue's bytes, and a KeyValue's with it. */
const stringValueSize = (bytes: number): number => delimited(bytes)
const keyValueSize = (keyBytes: number, valueBytes: number): number => delimited(keyBytes) + delimited(valueBytes)

const KEY = {
  hostName: "host.name",
  namespace: "k8s.namespace.name",
  pod: "k8s.pod.name",
  container: "k8s.container.name",
  containerId: "container.id",
  facility: "syslog.facility",
  appname: "syslog.appname",
  procid: "syslog.procid",
  msgid: "syslog.msgid",
  structuredData: "syslog.structured_data"
} as const

/** Writes a KeyValue with a string value as field `field`. */
const writeStringKeyValue = (w: Writer, field: number, key: string, value: string, valueBytes: number): void => {
  const keyBytes = key.length // our keys are ASCII
  w.tag(field, WireType.LengthDelimited)
  w.varint(keyValueSize(keyBytes, stringValueSize(valueBytes)))
  w.stringOfLength(1, key, keyBytes)
  w.tag(2, WireType.LengthDelimited)
  w.varint(stringValueSize(valueBytes))
  w.stringOfLength(1, value, valueBytes)
}

/** ns = ms × 10^6 as fixed64 halves, exactly (every product below 2^53). */
const writeMillisAsNanos = (w: Writer, millis: number): void => {
  if (!(Number.isFinite(millis) && millis > 0)) return w.fixed64(0, 0)
  const ms = Math.floor(millis)
  const low = (ms % 4294967296) * 1e6
  w.fixed64(low % 4294967296, Math.floor(ms / 4294967296) * 1e6 + Math.floor(low / 4294967296))
}

const writeResource = (w: Writer, packet: LogPacket): void => {
  const at = w.begin(1)
  const attribute = (key: string, value: string | undefined) => {
    if (value) writeStringKeyValue(w, 1, key, value, utf8(value))
  }
  attribute(KEY.hostName, packet.hostname)
  // host.name is written even when empty, as fromPackets does.
  if (packet.hostname === "") writeStringKeyValue(w, 1, KEY.hostName, "", 0)
  const k8s = packet.kubernetes
  if (k8s !== undefined) {
    attribute(KEY.namespace, k8s.namespace)
    attribute(KEY.pod, k8s.pod)
    attribute(KEY.container, k8s.container)
    attribute(KEY.containerId, k8s.containerId)
  }
  w.end(at)
}

const writeRecord = (w: Writer, packet: LogPacket, observedMillis: number): void => {
  const text = severityTexts[packet.severity]!
  const messageBytes = utf8(packet.message)
  const tagBytes = packet.tag === "" ? -1 : utf8(packet.tag)
  const procBytes = packet.procId === undefined ? -1 : utf8(packet.procId)
  const msgIdBytes = packet.msgId === undefined ? -1 : utf8(packet.msgId)
  const sdBytes = packet.structuredData === undefined ? -1 : utf8(packet.structuredData)
  // syslog.facility: an int AnyValue (tag 0x18 + varint).
  const facilityValue = 1 + varintSize(packet.facility)
  let size = 9 + 2 + delimited(text.length) + delimited(stringValueSize(messageBytes)) + 9 +
    delimited(delimited(KEY.facility.length) + delimited(facilityValue))
  if (tagBytes >= 0) size += delimited(keyValueSize(KEY.appname.length, stringValueSize(tagBytes)))
  if (procBytes >= 0) size += delimited(keyValueSize(KEY.procid.length, stringValueSize(procBytes)))
  if (msgIdBytes >= 0) size += delimited(keyValueSize(KEY.msgid.length, stringValueSize(msgIdBytes)))
  if (sdBytes >= 0) size += delimited(keyValueSize(KEY.structuredData.length, stringValueSize(sdBytes)))

  w.tag(2, WireType.LengthDelimited)
  w.varint(size)
  w.tag(1, WireType.Fixed64)
  writeMillisAsNanos(w, packet.time.getTime())
  w.tag(2, WireType.Varint)
  w.varint(severityNumbers[packet.severity]!)
  w.stringOfLength(3, text, text.length)
  w.tag(5, WireType.LengthDelimited)
  w.varint(stringValueSize(messageBytes))
  w.stringOfLength(1, packet.message, messageBytes)
  w.tag(6, WireType.LengthDelimited)
  w.varint(delimited(KEY.facility.length) + delimited(facilityValue))
  w.stringOfLength(1, KEY.facility, KEY.facility.length)
  w.tag(2, WireType.LengthDelimited)
  w.varint(facilityValue)
  w.tag(3, WireType.Varint)
  w.varint(packet.facility)
  if (tagBytes >= 0) writeStringKeyValue(w, 6, KEY.appname, packet.tag, tagBytes)
  if (procBytes >= 0) writeStringKeyValue(w, 6, KEY.procid, packet.procId!, procBytes)
  if (msgIdBytes >= 0) writeStringKeyValue(w, 6, KEY.msgid, packet.msgId!, msgIdBytes)
  if (sdBytes >= 0) writeStringKeyValue(w, 6, KEY.structuredData, packet.structuredData!, sdBytes)
  w.tag(11, WireType.Fixed64)
  writeMillisAsNanos(w, observedMillis)
}

/** A batch as the protobuf body of an OTLP/HTTP logs request; `observedMillis` is every record's observed time. */
export const encodePackets = (batch: ReadonlyArray<LogPacket>, observedMillis: number): Uint8Array => {
  // Group by resource, in order of first appearance (as fromPackets).
  const groups = new Map<string, Array<LogPacket>>()
  let lastHostname: string | undefined
  let lastKubernetes: LogPacket["kubernetes"] = undefined
  let group: Array<LogPacket> | undefined
  let estimate = 1024
  for (const packet of batch) {
    if (group === undefined || packet.hostname !== lastHostname || packet.kubernetes !== lastKubernetes) {
      const k8s = packet.kubernetes
      const key = k8s === undefined
        ? packet.hostname
        : `${packet.hostname}\u0000${k8s.namespace ?? ""}\u0000${k8s.pod ?? ""}\u0000${k8s.container ?? ""}\u0000${k8s.containerId ?? ""}`
      group = groups.get(key)
      if (group === undefined) {
        group = []
        groups.set(key, group)
      }
      lastHostname = packet.hostname
      lastKubernetes = packet.kubernetes
    }
    group.push(packet)
    estimate += 3 * packet.message.length + packet.tag.length + 160
  }
  const w = new Writer(estimate)
  for (const packets of groups.values()) {
    const resourceLogs = w.begin(1)
    writeResource(w, packets[0]!)
    const scopeLogs = w.begin(2)
    const scope = w.begin(1)
    w.stringOfLength(1, SCOPE_NAME, SCOPE_NAME.length)
    w.end(scope)
    for (const packet of packets) writeRecord(w, packet, observedMillis)
    w.end(scopeLogs)
    w.end(resourceLogs)
  }
  return w.view()
}
