/**
 * Reads a syslog line in whichever format it is: RFC 5424 when VERSION "1" follows PRI, RFC 3164
 * otherwise. A trailing CR/LF/NUL (left by some UDP senders) is ignored.
 */
import type { LogPacket } from "../LogPacket.ts"
import * as Rfc3164 from "./Rfc3164.ts"
import * as Rfc5424 from "./Rfc5424.ts"
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
