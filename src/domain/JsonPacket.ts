/**
 * Packets as JSON, the original's way: `{"severity","facility","hostname","tag","time","message"}`
 * — what `http(s)://` drains send and what the HTTP events input takes.
 *
 * Reading follows Go's encoding/json, which the original used: field names match in any case
 * (`Hostname`, `hostname`, `HOSTNAME`), unknown fields are ignored. `time` is an RFC 3339 string
 * (or epoch milliseconds); missing, it is the time of receipt, and so is a time outside the years
 * 0000–9999 (RFC 5424 has four digits for the year; `onTimeReplaced` is told). `hostname` is
 * required (a packet without one could never be routed); `message` must be a string if present.
 */
import { type LogPacket, make } from "./LogPacket.ts"
import { formatTimestamp, isFourDigitYear } from "./syslog/Rfc5424.ts"

export const toJson = (packet: LogPacket): string =>
  JSON.stringify({
    severity: packet.severity,
    facility: packet.facility,
    hostname: packet.hostname,
    tag: packet.tag,
    time: formatTimestamp(packet.time),
    message: packet.message
  })

/** A packet from one parsed JSON value, or why it is not one. */
export const fromJson = (
  value: unknown,
  receivedAt: Date,
  onTimeReplaced: () => void = () => {}
): LogPacket | { readonly error: string } => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { error: "expected a JSON object" }
  const fields = new Map<string, unknown>()
  for (const [key, field] of Object.entries(value)) {
    const name = key.toLowerCase()
    // Go picks an exact-case match first; otherwise the first case-insensitive one.
    if (!fields.has(name) || key === name) fields.set(name, field)
  }
  const hostname = fields.get("hostname")
  if (typeof hostname !== "string" || hostname.trim() === "") return { error: "Hostname is required (a string)" }
  const message = fields.get("message") ?? ""
  if (typeof message !== "string") return { error: "Message must be a string" }
  const tag = fields.get("tag") ?? ""
  if (typeof tag !== "string") return { error: "Tag must be a string" }
  const severity = fields.get("severity") ?? 6
  if (!isIntIn(severity, 0, 7)) return { error: "Severity must be an integer from 0 to 7" }
  const facility = fields.get("facility") ?? 1
  if (!isIntIn(facility, 0, 23)) return { error: "Facility must be an integer from 0 to 23" }
  const time = fields.get("time")
  let at = receivedAt
  if (time !== undefined && time !== null) {
    const millis = typeof time === "number" ? time : typeof time === "string" ? Date.parse(time) : Number.NaN
    if (Number.isNaN(millis)) return { error: "Time must be an RFC 3339 time" }
    at = new Date(millis)
    if (!isFourDigitYear(at)) {
      at = receivedAt
      onTimeReplaced()
    }
  }
  return make({ time: at, hostname: hostname.trim(), tag, message, severity, facility })
}

export const isError = (u: LogPacket | { readonly error: string }): u is { readonly error: string } => "error" in u

const isIntIn = (u: unknown, min: number, max: number): u is number =>
  typeof u === "number" && Number.isInteger(u) && u >= min && u <= max
