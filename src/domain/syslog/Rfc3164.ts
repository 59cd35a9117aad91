/**
 * RFC 3164 ("BSD") syslog messages: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`.
 *
 * The format has no year and no time zone, and senders vary, so parsing is deliberately forgiving:
 *
 * - Time zone: the timestamp is read in logtrain's own zone (`TZ`; UTC in the container image).
 * - Year: of the years around `receivedAt`, the one that puts the timestamp closest to it, so a
 *   "Dec 31 23:59:59" line received on January 1st belongs to the year before.
 * - An RFC 3339 timestamp in place of `Mmm dd hh:mm:ss` (rsyslog's high-precision variant) is read
 *   as such, with its own zone.
 * - A missing timestamp means "now"; a missing hostname (the token after the time already looks
 *   like a tag: it ends with `:` or holds `[`) means `fallbackHostname`, e.g. the sender's address.
 */
import type { LogPacket } from "../LogPacket.ts"
import { readPriority } from "./Rfc5424.ts"
import type { SyslogParseError } from "./SyslogParseError.ts"

const MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec"

export const parse = (
  line: string,
  receivedAt: Date,
  fallbackHostname = ""
): LogPacket | SyslogParseError => {
  const head = readPriority(line)
  if ("reason" in head) return head
  let i = head.end

  let time = receivedAt
  const bsd = readBsdTimestamp(line, i, receivedAt)
  if (bsd !== undefined) {
    time = bsd.time
    i = bsd.end
  } else {
    const iso = readIsoTimestamp(line, i)
    if (iso !== undefined) {
      time = iso.time
      i = iso.end
    }
  }

  // HOSTNAME, unless the next token is already the tag.
  let hostname = fallbackHostname
  const tokenEnd = indexOfOr(line, " ", i, line.length)
  const token = line.slice(i, tokenEnd)
  const timed = i !== head.end
  if (timed && token.length > 0 && !looksLikeTag(token) && tokenEnd < line.length) {
    hostname = token
    i = tokenEnd + 1
  }

  // TAG[PID]: MSG — the tag ends at '[', ':' or a space.
  let tagEnd = i
  while (tagEnd < line.length) {
    const c = line.charCodeAt(tagEnd)
    if (c === 91 /* [ */ || c === 58 /* : */ || c === 32) break
    tagEnd++
  }
  let tag = line.slice(i, tagEnd)
  let procId: string | undefined
  let j = tagEnd
  if (line.charCodeAt(j) === 91) {
    const close = line.indexOf("]", j)
    if (close > j) {
      procId = line.slice(j + 1, close)
      j = close + 1
    }
  }
  let message: string
  if (line.charCodeAt(j) === 58 /* : */) {
    j++
    if (line.charCodeAt(j) === 32) j++
    message = line.slice(j)
  } else if (j === tagEnd && line.charCodeAt(j) === 32 && tag.length > 0 && procId === undefined && !timed) {
    // "<13>some text": no header at all, the whole rest is the message.
    tag = ""
    message = line.slice(i)
  } else {
    if (line.charCodeAt(j) === 32) j++
    message = line.slice(j)
  }

  return {
    time,
    hostname,
    tag,
    message,
    severity: head.pri & 7,
    facility: head.pri >> 3,
    procId,
    msgId: undefined,
    structuredData: undefined,
    rfc5424: undefined,
    raw: undefined,
    kubernetes: undefined,
    receipt: undefined,
    position: undefined
  }
}

const looksLikeTag = (token: string): boolean => token.endsWith(":") || token.includes("[")

const indexOfOr = (line: string, search: string, from: number, otherwise: number): number => {
  const at = line.indexOf(search, from)
  return at < 0 ? otherwise : at
}

const digit = (line: string, i: number): number => {
  const c = line.charCodeAt(i) - 48
  return c >= 0 && c <= 9 ? c : Number.NaN
}

const two = (line: string, i: number): number => digit(line, i) * 10 + digit(line, i + 1)

/** `Mmm dd hh:mm:ss` (day space-padded or not, optional `.fff`) followed by a space. */
const readBsdTimestamp = (
  line: string,
  start: number,
  receivedAt: Date
): { readonly time: Date; readonly end: number } | undefined => {
  const month = MONTHS.indexOf(line.slice(start, start + 3))
  if (month < 0 || month % 3 !== 0 || line.charCodeAt(start + 3) !== 32) return undefined
  let i = start + 4
  if (line.charCodeAt(i) === 32) i++
  let day = digit(line, i++)
  if (!Number.isNaN(digit(line, i))) day = day * 10 + digit(line, i++)
  if (Number.isNaN(day) || day < 1 || day > 31 || line.charCodeAt(i) !== 32) return undefined
  i++
  const hours = two(line, i)
  const minutes = two(line, i + 3)
  const seconds = two(line, i + 6)
  if (
    line.charCodeAt(i + 2) !== 58 || line.charCodeAt(i + 5) !== 58 ||
    !(hours < 24 && minutes < 60 && seconds < 61)
  ) return undefined
  i += 8
  let millis = 0
  if (line.charCodeAt(i) === 46 /* . */) {
    let scale = 100
    i++
    while (!Number.isNaN(digit(line, i))) {
      millis += digit(line, i++) * scale
      scale /= 10
    }
    millis = Math.floor(millis)
  }
  if (i < line.length && line.charCodeAt(i) !== 32) return undefined
  return { time: closestYear(month / 3, day, hours, minutes, seconds, millis, receivedAt), end: i + 1 }
}

/** The local time with that month/day/time whose year puts it closest to `receivedAt`. */
export const closestYear = (
  month: number,
  day: number,
  hours: number,
  minutes: number,
  seconds: number,
  millis: number,
  receivedAt: Date
): Date => {
  const year = receivedAt.getFullYear()
  let best = new Date(year, month, day, hours, minutes, seconds, millis)
  for (const candidate of [year - 1, year + 1]) {
    const date = new Date(candidate, month, day, hours, minutes, seconds, millis)
    if (Math.abs(date.getTime() - receivedAt.getTime()) < Math.abs(best.getTime() - receivedAt.getTime())) {
      best = date
    }
  }
  return best
}

/** An RFC 3339 timestamp followed by a space. */
const readIsoTimestamp = (line: string, start: number): { readonly time: Date; readonly end: number } | undefined => {
  if (Number.isNaN(digit(line, start)) || line.charCodeAt(start + 4) !== 45 || line.charCodeAt(start + 10) !== 84) {
    return undefined
  }
  const end = indexOfOr(line, " ", start, line.length)
  const millis = Date.parse(line.slice(start, end))
  return Number.isNaN(millis) ? undefined : { time: new Date(millis), end: end + 1 }
}
