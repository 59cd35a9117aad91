/**
 * The unit logtrain moves around: one log record with the fields syslog gives it.
 *
 * Packets are plain readonly objects so the hot path can create millions of them cheaply. Only the
 * syslog decoders set `rfc5424`; anything that derives a packet with different fields builds a new
 * one with `make` (which never carries it over), so a forwarded original can never be stale.
 */
import type { Receipt } from "./Receipt.ts"

/** RFC 5424 §6.2.1 severities. */
export const Severity = {
  Emergency: 0,
  Alert: 1,
  Critical: 2,
  Error: 3,
  Warning: 4,
  Notice: 5,
  Informational: 6,
  Debug: 7
} as const

/** RFC 5424 §6.2.1 facilities (the ones with names in common use). */
export const Facility = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  ntp: 12,
  security: 13,
  console: 14,
  solarisCron: 15,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23
} as const

/**
 * Where a packet came from in Kubernetes, when its input knows: the container log input from the
 * file's name (`<pod>_<namespace>_<container>-<id>.log`), the OTLP input from resource attributes.
 * One object is shared by all the packets of a source (a container log file's `ContainerFile` is
 * one), so carrying it costs a pointer per packet. Drains that have a place for it (OTLP resource
 * attributes `k8s.*`, Loki labels) use it; the others ignore it.
 */
export interface KubernetesSource {
  readonly namespace?: string | undefined
  readonly pod?: string | undefined
  readonly container?: string | undefined
  readonly containerId?: string | undefined
}

export interface LogPacket {
  readonly time: Date
  /** What routes are looked up by: an app, a service, a host. */
  readonly hostname: string
  /** RFC 5424 APP-NAME, RFC 3164 TAG. */
  readonly tag: string
  readonly message: string
  /** 0 (emergency) .. 7 (debug). */
  readonly severity: number
  /** 0 (kern) .. 23 (local7). */
  readonly facility: number
  /** RFC 5424 PROCID, or the `[pid]` of an RFC 3164 tag. */
  readonly procId?: string | undefined
  /** RFC 5424 MSGID. */
  readonly msgId?: string | undefined
  /** RFC 5424 STRUCTURED-DATA exactly as received (absent for the NILVALUE). */
  readonly structuredData?: string | undefined
  /**
   * The RFC 5424 text this packet was decoded from, unchanged. Syslog drains forward it as is
   * (keeping sub-millisecond time and the sender's offset) instead of formatting the fields again.
   */
  readonly rfc5424?: string | undefined
  /**
   * Set only with `rfc5424`, by inputs that read it from bytes (Rfc5424Raw): those bytes, one
   * character per byte (latin1), which syslog drains write out as they are.
   */
  readonly raw?: string | undefined
  /** Namespace, pod and container, for packets from Kubernetes sources that know them. */
  readonly kubernetes?: KubernetesSource | undefined
  /**
   * Set by sources that wait for delivery (container log files, where the file is the buffer): who
   * to tell when a drain is done with this packet, or cannot take it now. See Receipt.ts.
   */
  readonly receipt?: Receipt | undefined
  /** Where this packet is in its source (a file: the byte after its last piece); with `receipt`. */
  readonly position?: number | undefined
}

export interface LogPacketFields {
  readonly time: Date
  readonly hostname: string
  readonly tag: string
  readonly message: string
  readonly severity?: number | undefined
  readonly facility?: number | undefined
  readonly procId?: string | undefined
  readonly msgId?: string | undefined
  readonly structuredData?: string | undefined
  readonly kubernetes?: KubernetesSource | undefined
  readonly receipt?: Receipt | undefined
  readonly position?: number | undefined
}

/** A packet from fields; severity defaults to informational and facility to user, as `logger` does. */
export const make = (fields: LogPacketFields): LogPacket => ({
  time: fields.time,
  hostname: fields.hostname,
  tag: fields.tag,
  message: fields.message,
  severity: clampSeverity(fields.severity ?? Severity.Informational),
  facility: clampFacility(fields.facility ?? Facility.user),
  procId: fields.procId,
  msgId: fields.msgId,
  structuredData: fields.structuredData,
  // Same shape as the decoders' packets, so the hot path sees one object layout.
  rfc5424: undefined,
  raw: undefined,
  kubernetes: fields.kubernetes,
  receipt: fields.receipt,
  position: fields.position
})

const clampSeverity = (n: number): number => (Number.isInteger(n) && n >= 0 && n <= 7 ? n : Severity.Informational)
const clampFacility = (n: number): number => (Number.isInteger(n) && n >= 0 && n <= 23 ? n : Facility.user)

/** The PRI value: facility * 8 + severity. */
export const priority = (packet: LogPacket): number => packet.facility * 8 + packet.severity

/** A rough size in bytes, for batching limits; exact byte counts are the encoders' business. */
export const approximateBytes = (packet: LogPacket): number =>
  packet.raw !== undefined
    ? packet.raw.length
    : packet.rfc5424 !== undefined
    ? packet.rfc5424.length
    : packet.message.length + packet.hostname.length + packet.tag.length + 40
