/**
 * Reads a syslog line in whichever format it is: RFC 5424 when VERSION "1" follows PRI, RFC 3164
 * otherwise. A trailing CR/LF/NUL (left by some UDP senders) is ignored.
 */
import type { LogPacket } from "../LogPacket.ts"
import * as Rfc3164 from "./Rfc3164.ts"
import * as Rfc5424 from "./Rfc5424.ts"
import * as Rfc5424Raw from "./Rfc5424Raw.ts"
import { fail, type SyslogParseError } from "./SyslogParseError.ts"

export { SyslogParseError } from "./SyslogParseError.ts"

export const parse = (line: string, receivedAt: Date, fallbackHostname = ""): LogPacket | SyslogParseError => {
  let end = line.length
  while (end > 0) {
    const c = line.charCodeAt(end - 1)
    if (c !== 10 && c !== 13 && c !== 0) break
    end--
  }
  if (end !== line.length) line = line.slice(0, end)
  if (line.length === 0) return fail("Empty", line)
  const close = line.indexOf(">", 1)
  if (close > 0 && close <= 4 && Rfc5424.isRfc5424(line, close + 1)) return Rfc5424.parse(line, receivedAt)
  return Rfc3164.parse(line, receivedAt, fallbackHostname)
}

export const isParseError = (u: LogPacket | SyslogParseError): u is SyslogParseError => "_tag" in u

/**
 * `parse` for a frame taken as a byte string (one character per byte, see Rfc5424Raw): RFC 5424
 * is read from its bytes, and forwarded as them; anything else is decoded first.
 */
export const parseRaw = (raw: string, receivedAt: Date, fallbackHostname = ""): LogPacket | SyslogParseError => {
  let end = raw.length
  while (end > 0) {
    const c = raw.charCodeAt(end - 1)
    if (c !== 10 && c !== 13 && c !== 0) break
    end--
  }
  if (end !== raw.length) raw = raw.slice(0, end)
  if (raw.length === 0) return fail("Empty", raw)
  // The PRI's `>` among the first five characters (what `raw.indexOf(">", 1) <= 4` asks, without
  // a call into a builtin for every line).
  const close = raw.charCodeAt(1) === 62 ? 1 : raw.charCodeAt(2) === 62 ? 2 : raw.charCodeAt(3) === 62 ? 3 : raw.charCodeAt(4) === 62 ? 4 : -1
  if (close > 0 && Rfc5424.isRfc5424(raw, close + 1)) return Rfc5424Raw.parse(raw, receivedAt)
  return Rfc3164.parse(Rfc5424Raw.decode(raw), receivedAt, fallbackHostname)
}
