/**
 * OTLP/HTTP logs requests (`ExportLogsServiceRequest`, protobuf or JSON) as packets, for the OTLP
 * input.
 *
 * - Hostname (what routes look up), from the resource: the workload's name (`k8s.deployment.name`,
 *   `k8s.statefulset.name`, `k8s.daemonset.name`, else `service.name`) with `k8s.namespace.name`
 *   → `name.namespace` (`name-namespace` with AKKERIS=true), as logtrain names Kubernetes logs;
 *   without a namespace, `host.name`; else the workload's name alone; else the sender's address.
 * - Tag: the record's `syslog.appname`, else `k8s.pod.name`, else `service.name`.
 * - Message: the body (a string as it is; other values as JSON), cut at the message size limit.
 * - Severity from `severityNumber` (the reverse of the logs data model's syslog mapping), else
 *   from a `severityText` naming a level, else informational. Facility from `syslog.facility`,
 *   else user. Time: `timeUnixNano`, else `observedTimeUnixNano`, else the time of receipt.
 * - `syslog.procid`, `syslog.msgid`, `syslog.structured_data` become the packet's; the resource's
 *   `k8s.namespace.name`, `k8s.pod.name`, `k8s.container.name`, `container.id` its Kubernetes source.
 *   Other attributes have no place in a packet and are not carried.
 *
 * This module holds the record → packet rules and the protobuf reader; RequestJson.ts reads OTLP/JSON
 * into the same records.
 *
 * A body whose structure is broken (truncated, wrong wire types outside records, not JSON) is
 * refused whole: it throws. A record that is broken on its own (a field of the wrong type,
 * invalid UTF-8) is rejected alone and counted, as OTLP's partial success lets a server say.
 */
import { Buffer } from "node:buffer"
import { cutUtf8 } from "../ContainerLog.ts"
import { Facility, type KubernetesSource, type LogPacket, make, Severity } from "../LogPacket.ts"
import { ProtobufError, Reader, WireType } from "./Protobuf.ts"

export interface DecodeOptions {
  readonly receivedAt: Date
  /** AKKERIS=true: `name-namespace` rather than `name.namespace`. */
  readonly akkeris: boolean
  /** The hostname of records whose resource names nothing (the sender's address). */
  readonly fallbackHostname: string
  /** Messages longer than this many bytes (UTF-8) are cut, and counted. */
  readonly maxMessageBytes: number
}

export interface Decoded {
  readonly packets: Array<LogPacket>
  /** Records in the request. */
  total: number
  rejected: number
  /** Why the first rejected record was. */
  firstRejection: string | undefined
  /** Messages cut at the size limit. */
  truncated: number
}

/** What a body that is not an OTLP logs request throws. */
export class OtlpDecodeError extends Error {
  override readonly name = "OtlpDecodeError"
}

/** The resource attributes that name and place a record. */
export interface ResourceInfo {
  hostName?: string | undefined
  serviceName?: string | undefined
  workload?: string | undefined
  namespace?: string | undefined
  pod?: string | undefined
  container?: string | undefined
  containerId?: string | undefined
}

const WORKLOAD_KEYS = new Set(["k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name"])

/** The hostname routes are looked up by, for a resource (see the module comment). */
export const hostnameOf = (info: ResourceInfo, akkeris: boolean, fallback: string): string => {
  const name = info.workload || info.serviceName
  if (name && info.namespace) return akkeris ? `${name}-${info.namespace}` : `${name}.${info.namespace}`
  return info.hostName || name || fallback
}

/** Syslog severity of an OTLP SeverityNumber (1–24), or of a level's name when the number is unset. */
export const syslogSeverityOf = (severityNumber: number, severityText: string): number => {
  if (severityNumber >= 1 && severityNumber <= 8) return Severity.Debug
  if (severityNumber === 9) return Severity.Informational
  if (severityNumber >= 10 && severityNumber <= 12) return Severity.Notice
  if (severityNumber >= 13 && severityNumber <= 16) return Severity.Warning
  if (severityNumber === 17) return Severity.Error
  if (severityNumber === 18) return Severity.Critical
  if (severityNumber === 19 || severityNumber === 20) return Severity.Alert
  if (severityNumber >= 21 && severityNumber <= 24) return Severity.Emergency
  const text = severityText.trim().toLowerCase()
  if (text === "") return Severity.Informational
  if (text.startsWith("emerg") || text.startsWith("fatal") || text.startsWith("panic")) return Severity.Emergency
  if (text.startsWith("alert")) return Severity.Alert
  if (text.startsWith("crit")) return Severity.Critical
  if (text.startsWith("err")) return Severity.Error
  if (text.startsWith("warn")) return Severity.Warning
  if (text.startsWith("notice")) return Severity.Notice
  if (text.startsWith("debug") || text.startsWith("trace")) return Severity.Debug
  return Severity.Informational
}

/** Milliseconds of a fixed64 count of nanoseconds (from its halves), exactly. */
const millisOf = (low: number, high: number): number =>
  // 2^32 = 4294 * 10^6 + 967296: every product stays below 2^53.
  high * 4294 + Math.floor((high * 967296 + low) / 1e6)

/** What a record says, before it becomes a packet. */
export interface RecordFields {
  timeMs: number
  observedMs: number
  severityNumber: number
  severityText: string
  body: string
  appname: string | undefined
  procId: string | undefined
  msgId: string | undefined
  structuredData: string | undefined
  facility: number | undefined
}

export const emptyRecord = (): RecordFields => ({
  timeMs: 0,
  observedMs: 0,
  severityNumber: 0,
  severityText: "",
  body: "",
  appname: undefined,
  procId: undefined,
  msgId: undefined,
  structuredData: undefined,
  facility: undefined
})

/** Per resource: its hostname, default tag and Kubernetes source, shared by its records. */
interface ResourceContext {
  readonly hostname: string
  readonly tag: string
  readonly kubernetes: KubernetesSource | undefined
}

export const contextOf = (info: ResourceInfo, options: DecodeOptions): ResourceContext => ({
  hostname: hostnameOf(info, options.akkeris, options.fallbackHostname),
  tag: info.pod || info.serviceName || "",
  kubernetes: info.namespace || info.pod || info.container || info.containerId
    ? { namespace: info.namespace, pod: info.pod, container: info.container, containerId: info.containerId }
    : undefined
})

export const resourceKey = (info: ResourceInfo, key: string, value: string): void => {
  switch (key) {
    case "host.name":
      info.hostName = value
      return
    case "service.name":
      info.serviceName = value
      return
    case "k8s.namespace.name":
      info.namespace = value
      return
    case "k8s.pod.name":
      info.pod = value
      return
    case "k8s.container.name":
      info.container = value
      return
    case "container.id":
      info.containerId = value
      return
    default:
      if (WORKLOAD_KEYS.has(key)) info.workload ||= value
  }
}

export const recordAttribute = (r: RecordFields, key: string, value: unknown): void => {
  switch (key) {
    case "syslog.appname":
      r.appname = textOf(value)
      return
    case "syslog.procid":
      r.procId = textOf(value)
      return
    case "syslog.msgid":
      r.msgId = textOf(value)
      return
    case "syslog.structured_data":
      r.structuredData = textOf(value)
      return
    case "syslog.facility": {
      const n = typeof value === "string" ? Number(value) : value
      if (typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 23) r.facility = n
      return
    }
  }
}

export const toPacket = (r: RecordFields, context: ResourceContext, options: DecodeOptions, out: Decoded): void => {
  const millis = r.timeMs > 0 ? r.timeMs : r.observedMs > 0 ? r.observedMs : options.receivedAt.getTime()
  let message = r.body
  if (message.length > options.maxMessageBytes / 3) {
    const [head, rest] = cutUtf8(message, options.maxMessageBytes)
    if (rest !== "") {
      message = head
      out.truncated++
    }
  }
  out.packets.push(make({
    time: new Date(millis),
    hostname: context.hostname,
    tag: r.appname ?? context.tag,
    message,
    severity: syslogSeverityOf(r.severityNumber, r.severityText),
    facility: r.facility ?? Facility.user,
    procId: r.procId || undefined,
    msgId: r.msgId || undefined,
    structuredData: r.structuredData || undefined,
    kubernetes: context.kubernetes
  }))
}

export const reject = (out: Decoded, index: number, reason: string): void => {
  out.rejected++
  out.firstRejection ??= `log record ${index + 1}: ${reason}`
}

/** A value as text: strings as they are, anything else as JSON. */
export const textOf = (value: unknown): string => {
  if (typeof value === "string") return value
  if (value === undefined) return ""
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) ?? ""
}

// ---------------------------------------------------------------------------------------------
// Protobuf

export const MAX_DEPTH = 32

/** An AnyValue as a plain value: string, boolean, number (or decimal string beyond 2^53), base64, arrays, objects. */
const readAnyValue = (r: Reader, depth: number): unknown => {
  if (depth > MAX_DEPTH) throw new ProtobufError(`values nested deeper than ${MAX_DEPTH}`)
  let value: unknown = undefined
  while (!r.done) {
    const { field, wireType } = r.tag()
    switch (field) {
      case 1:
        r.expect(wireType, WireType.LengthDelimited, "AnyValue.string_value")
        value = r.string()
        break
      case 2:
        r.expect(wireType, WireType.Varint, "AnyValue.bool_value")
        value = r.varint64() !== 0n
        break
      case 3: {
        r.expect(wireType, WireType.Varint, "AnyValue.int_value")
        const n = BigInt.asIntN(64, r.varint64())
        value = n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString()
        break
      }
      case 4:
        r.expect(wireType, WireType.Fixed64, "AnyValue.double_value")
        value = r.double()
        break
      case 5: {
        r.expect(wireType, WireType.LengthDelimited, "AnyValue.array_value")
        const m = r.message()
        const items: Array<unknown> = []
        while (!m.done) {
          const t = m.tag()
          if (t.field === 1) {
            m.expect(t.wireType, WireType.LengthDelimited, "ArrayValue.values")
            items.push(readAnyValue(m.message(), depth + 1))
          } else m.skip(t.wireType)
        }
        value = items
        break
      }
      case 6: {
        r.expect(wireType, WireType.LengthDelimited, "AnyValue.kvlist_value")
        const m = r.message()
        const entries: Array<[string, unknown]> = []
        while (!m.done) {
          const t = m.tag()
          if (t.field === 1) {
            m.expect(t.wireType, WireType.LengthDelimited, "KeyValueList.values")
            entries.push(readKeyValue(m.message(), depth + 1))
          } else m.skip(t.wireType)
        }
        value = Object.fromEntries(entries)
        break
      }
      case 7:
        r.expect(wireType, WireType.LengthDelimited, "AnyValue.bytes_value")
        value = Buffer.from(r.bytes()).toString("base64")
        break
      default:
        r.skip(wireType)
    }
  }
  return value
}

const readKeyValue = (r: Reader, depth: number): [string, unknown] => {
  let key = ""
  let value: unknown = undefined
  while (!r.done) {
    const { field, wireType } = r.tag()
    if (field === 1) {
      r.expect(wireType, WireType.LengthDelimited, "KeyValue.key")
      key = r.string()
    } else if (field === 2) {
      r.expect(wireType, WireType.LengthDelimited, "KeyValue.value")
      value = readAnyValue(r.message(), depth)
    } else r.skip(wireType)
  }
  return [key, value]
}

const readResource = (r: Reader): ResourceInfo => {
  const info: ResourceInfo = {}
  while (!r.done) {
    const { field, wireType } = r.tag()
    if (field === 1) {
      r.expect(wireType, WireType.LengthDelimited, "Resource.attributes")
      const [key, value] = readKeyValue(r.message(), 0)
      resourceKey(info, key, textOf(value))
    } else r.skip(wireType)
  }
  return info
}

const readRecord = (r: Reader): RecordFields => {
  const record = emptyRecord()
  while (!r.done) {
    const { field, wireType } = r.tag()
    switch (field) {
      case 1: {
        r.expect(wireType, WireType.Fixed64, "LogRecord.time_unix_nano")
        const { high, low } = r.fixed64()
        record.timeMs = millisOf(low, high)
        break
      }
      case 11: {
        r.expect(wireType, WireType.Fixed64, "LogRecord.observed_time_unix_nano")
        const { high, low } = r.fixed64()
        record.observedMs = millisOf(low, high)
        break
      }
      case 2:
        r.expect(wireType, WireType.Varint, "LogRecord.severity_number")
        record.severityNumber = r.varint()
        break
      case 3:
        r.expect(wireType, WireType.LengthDelimited, "LogRecord.severity_text")
        record.severityText = r.string()
        break
      case 5:
        r.expect(wireType, WireType.LengthDelimited, "LogRecord.body")
        record.body = textOf(readAnyValue(r.message(), 0))
        break
      case 6: {
        r.expect(wireType, WireType.LengthDelimited, "LogRecord.attributes")
        const [key, value] = readKeyValue(r.message(), 0)
        recordAttribute(record, key, value)
        break
      }
      default:
        r.skip(wireType)
    }
  }
  return record
}

/** The packets of a protobuf ExportLogsServiceRequest; throws OtlpDecodeError for a body that is not one. */
export const decodeProtobuf = (body: Uint8Array, options: DecodeOptions): Decoded => {
  const out: Decoded = { packets: [], total: 0, rejected: 0, firstRejection: undefined, truncated: 0 }
  try {
    const top = new Reader(body)
    while (!top.done) {
      const { field, wireType } = top.tag()
      if (field !== 1) {
        top.skip(wireType)
        continue
      }
      top.expect(wireType, WireType.LengthDelimited, "resource_logs")
      const resourceLogs = top.message()
      // The resource may come after its scopes on the wire: find it first.
      let info: ResourceInfo = {}
      const scopes: Array<Reader> = []
      while (!resourceLogs.done) {
        const t = resourceLogs.tag()
        if (t.field === 1) {
          resourceLogs.expect(t.wireType, WireType.LengthDelimited, "ResourceLogs.resource")
          info = readResource(resourceLogs.message())
        } else if (t.field === 2) {
          resourceLogs.expect(t.wireType, WireType.LengthDelimited, "ResourceLogs.scope_logs")
          scopes.push(resourceLogs.message())
        } else resourceLogs.skip(t.wireType)
      }
      const context = contextOf(info, options)
      for (const scope of scopes) {
        while (!scope.done) {
          const t = scope.tag()
          if (t.field !== 2) {
            scope.skip(t.wireType)
            continue
          }
          scope.expect(t.wireType, WireType.LengthDelimited, "ScopeLogs.log_records")
          const recordReader = scope.message()
          const index = out.total++
          let record: RecordFields
          try {
            record = readRecord(recordReader)
          } catch (error) {
            if (!(error instanceof ProtobufError)) throw error
            reject(out, index, error.message)
            continue
          }
          toPacket(record, context, options, out)
        }
      }
    }
  } catch (error) {
    if (error instanceof ProtobufError) throw new OtlpDecodeError(`not an OTLP logs request (protobuf): ${error.message}`)
    throw error
  }
  return out
}
