/**
 * RFC 5424 syslog messages: parse one into a LogPacket, format a LogPacket as one.
 *
 * The parser is a single left-to-right scan with no regular expressions; it runs once per received
 * line. It requires the RFC's header (PRI, VERSION, six space-separated fields) but is lenient
 * about the rest, because rejecting a line would lose a log: header fields may be over-long, and
 * when what follows MSGID is not STRUCTURED-DATA (Heroku logplex omits the field) it is read as
 * the message. The formatter is strict: what it
 * writes is always valid RFC 5424, whatever the packet holds.
 */
import * as Rfc3339 from "../Rfc3339.ts"
import type { LogPacket } from "../LogPacket.ts"
import { fail, type SyslogParseError } from "./SyslogParseError.ts"

/** Maximum lengths of the header fields, RFC 5424 §6. */
export const Limits = { hostname: 255, appName: 48, procId: 128, msgId: 32 } as const

const SP = 32
const BOM = 0xfeff

/** Reads `<PRI>` at the start of `line`; returns the index after `>` and the PRI, or a reason. */
export const readPriority = (line: string): { readonly end: number; readonly pri: number } | SyslogParseError => {
  if (line.charCodeAt(0) !== 60 /* < */) return fail("MissingPriority", line)
  let pri = 0
  let i = 1
  for (; i < line.length && i <= 4; i++) {
    const c = line.charCodeAt(i)
    if (c === 62 /* > */) break
    if (c < 48 || c > 57) return fail("InvalidPriority", line)
    pri = pri * 10 + (c - 48)
  }
  if (i === 1 || line.charCodeAt(i) !== 62 || pri > 191) return fail("InvalidPriority", line)
  // RFC 5424 §6.2.1: no leading zeros, except "<0>".
  if (i > 2 && line.charCodeAt(1) === 48) return fail("InvalidPriority", line)
  return { end: i + 1, pri }
}

/** True when the text after PRI starts with a RFC 5424 VERSION ("1 "). */
export const isRfc5424 = (line: string, afterPri: number): boolean =>
  line.charCodeAt(afterPri) === 49 /* 1 */ && line.charCodeAt(afterPri + 1) === SP

/**
 * Parses one RFC 5424 message. `receivedAt` stands in for a NILVALUE or unreadable TIMESTAMP; in
 * that case the packet is not marked forwardable as is, since its time was repaired.
 */
export const parse = (line: string, receivedAt: Date): LogPacket | SyslogParseError => {
  const head = readPriority(line)
  if ("reason" in head) return head
  const pri = head.pri
  let i = head.end
  if (!isRfc5424(line, i)) return fail("InvalidVersion", line)
  i += 2

  // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each followed by exactly one SP.
  const tsStart = i
  const tsEnd = line.indexOf(" ", i)
  if (tsEnd <= tsStart) return fail("MissingField", line)
  const hostEnd = line.indexOf(" ", tsEnd + 1)
  if (hostEnd <= tsEnd + 1) return fail("MissingField", line)
  const appEnd = line.indexOf(" ", hostEnd + 1)
  if (appEnd <= hostEnd + 1) return fail("MissingField", line)
  const procEnd = line.indexOf(" ", appEnd + 1)
  if (procEnd <= appEnd + 1) return fail("MissingField", line)
  const msgIdEnd = line.indexOf(" ", procEnd + 1)
  if (msgIdEnd <= procEnd + 1) return fail("MissingField", line)

  const sdStart = msgIdEnd + 1
  let sdEnd = structuredDataEnd(line, sdStart)
  let repaired = false
  if (sdEnd < 0 || (sdEnd < line.length && line.charCodeAt(sdEnd) !== SP)) {
    // Heroku logplex leaves STRUCTURED-DATA out (`… web.1 - message`), and some senders break it;
    // either way the rest is the message, rather than a lost line. Such a packet is formatted
    // anew when forwarded, so what leaves is valid RFC 5424.
    sdEnd = sdStart - 1
    repaired = true
  }

  let message = ""
  if (sdEnd < line.length) {
    let msgStart = sdEnd + 1
    if (line.charCodeAt(msgStart) === BOM) msgStart++
    message = line.slice(msgStart)
  }

  let time: Date
  if (tsEnd - tsStart === 1 && line.charCodeAt(tsStart) === 45 /* - */) {
    time = receivedAt
    repaired = true
  } else {
    const millis = parseTimestamp(line, tsStart, tsEnd)
    if (Number.isNaN(millis)) {
      time = receivedAt
      repaired = true
    } else {
      time = Rfc3339.dateOf(millis)
    }
  }

  return {
    time,
    hostname: nilToEmpty(line, tsEnd + 1, hostEnd),
    tag: nilToEmpty(line, hostEnd + 1, appEnd),
    message,
    severity: pri & 7,
    facility: pri >> 3,
    procId: nilToUndefined(line, appEnd + 1, procEnd),
    msgId: nilToUndefined(line, procEnd + 1, msgIdEnd),
    structuredData: sdEnd - sdStart <= 1 ? undefined : line.slice(sdStart, sdEnd),
    rfc5424: repaired ? undefined : line,
    raw: undefined,
    kubernetes: undefined,
    receipt: undefined,
    position: undefined
  }
}

const nilToEmpty = (line: string, start: number, end: number): string =>
  end - start === 1 && line.charCodeAt(start) === 45 ? "" : line.slice(start, end)

const nilToUndefined = (line: string, start: number, end: number): string | undefined =>
  end - start === 1 && line.charCodeAt(start) === 45 ? undefined : line.slice(start, end)

/** Milliseconds since the epoch, or NaN. Requires the RFC 3339 shape `YYYY-MM-DDThh:mm:ss…`. */
const parseTimestamp = (line: string, start: number, end: number): number =>
  isZoned(line, start, end) ? Rfc3339.parse(line, start, end) : Number.NaN

/**
 * Whether `line[start, end)` may be an RFC 3339 time as RFC 5424 requires it: long enough, a `T`,
 * and a zone: "Z" (ABNF strings ignore case: "z" too) or a numeric offset ending in a digit.
 */
export const isZoned = (line: string, start: number, end: number): boolean => {
  if (end - start < 20 || line.charCodeAt(start + 10) !== 84 /* T */) return false
  const last = line.charCodeAt(end - 1)
  return last === 90 /* Z */ || last === 122 /* z */ || (last >= 48 && last <= 57)
}


/**
 * Index just after the STRUCTURED-DATA that starts at `start` ("-" or one or more elements), or -1
 * when it is malformed. Inside a quoted PARAM-VALUE, `\"`, `\\` and `\]` are escapes and `]` does
 * not close the element.
 */
export const structuredDataEnd = (line: string, start: number): number =>
  line.charCodeAt(start) === 45 /* - */ ? start + 1 : scanStructuredData(line, start, undefined)

export interface StructuredDataElement {
  readonly id: string
  readonly params: ReadonlyArray<readonly [name: string, value: string]>
}

/** Reads STRUCTURED-DATA text into elements, undoing the escapes in values; undefined if malformed. */
export const parseStructuredData = (sd: string): ReadonlyArray<StructuredDataElement> | undefined => {
  if (sd === "-" || sd === "") return []
  const elements: Array<StructuredDataElement> = []
  return scanStructuredData(sd, 0, elements) === sd.length ? elements : undefined
}

/**
 * One scanner for both uses: finding where STRUCTURED-DATA ends (no allocation) and, when `into` is
 * given, collecting its elements. Returns the index after the last element, or -1.
 */
const scanStructuredData = (
  text: string,
  start: number,
  into: Array<StructuredDataElement> | undefined
): number => {
  let i = start
  if (text.charCodeAt(i) !== 91 /* [ */) return -1
  while (text.charCodeAt(i) === 91) {
    const idStart = ++i
    while (i < text.length && isNameChar(text.charCodeAt(i))) i++
    if (i === idStart) return -1
    const idEnd = i
    const params: Array<readonly [string, string]> | undefined = into && []
    while (text.charCodeAt(i) === SP) {
      const nameStart = ++i
      while (i < text.length && isNameChar(text.charCodeAt(i))) i++
      if (i === nameStart || text.charCodeAt(i) !== 61 /* = */ || text.charCodeAt(i + 1) !== 34 /* " */) return -1
      const name = params && text.slice(nameStart, i)
      i += 2
      let value = ""
      let chunkStart = i
      for (;; i++) {
        if (i >= text.length) return -1
        const c = text.charCodeAt(i)
        if (c === 34) break
        if (c === 92 /* \ */) {
          const next = text.charCodeAt(i + 1)
          // Only these three are escapes; any other backslash stays as it is (RFC 5424 §6.3.3).
          if (next === 34 || next === 92 || next === 93) {
            if (params) value += text.slice(chunkStart, i)
            chunkStart = ++i
          }
        }
      }
      if (params) params.push([name!, value + text.slice(chunkStart, i)])
      i++
    }
    if (text.charCodeAt(i) !== 93 /* ] */) return -1
    if (into) into.push({ id: text.slice(idStart, idEnd), params: params! })
    i++
  }
  return i
}

/** SD-NAME characters: PRINTUSASCII except `=`, SP, `]` and `"`. */
const isNameChar = (c: number): boolean => c > 32 && c < 127 && c !== 61 && c !== 93 && c !== 34

/** Writes elements as STRUCTURED-DATA text, escaping `"`, `\` and `]` in values. */
export const formatStructuredData = (elements: ReadonlyArray<StructuredDataElement>): string => {
  if (elements.length === 0) return "-"
  let out = ""
  for (const element of elements) {
    out += `[${sdName(element.id, 32)}`
    for (const [name, value] of element.params) {
      out += ` ${sdName(name, 32)}="${value.replace(/["\\\]]/g, "\\$&")}"`
    }
    out += "]"
  }
  return out
}

/** SD-NAME: 1*32 PRINTUSASCII except `=`, SP, `]`, `"`. */
const sdName = (name: string, max: number): string => {
  const cleaned = name.replace(/[^\x21-\x7e]|[=\]"]/g, "_").slice(0, max)
  return cleaned.length === 0 ? "_" : cleaned
}

/**
 * A header field made valid: NILVALUE when empty, characters outside PRINTUSASCII replaced by `_`,
 * cut to the field's maximum length. Cheap when the value is already valid, which is the usual case.
 */
export const headerField = (value: string | undefined, max: number): string => {
  if (value === undefined || value.length === 0) return "-"
  let valid = value.length <= max
  for (let i = 0; valid && i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 33 || c > 126) valid = false
  }
  if (valid) return value
  const cleaned = value.slice(0, max).replace(/[^\x21-\x7e]/g, "_")
  return cleaned.length === 0 ? "-" : cleaned
}

/** The last second formatted (`YYYY-MM-DDTHH:MM:SS.`): consecutive packets mostly share it. */
let cachedSecond = Number.NaN
let cachedPrefix = ""
/** 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: beyond, toISOString writes `±YYYYYY`. */
const FIRST_FOUR_DIGIT_YEAR = -62_167_219_200_000
const LAST_FOUR_DIGIT_YEAR = 253_402_300_799_999

/**
 * Whether RFC 5424 (and RFC 3339, whose FULL-DATE has four digits for the year) can write this
 * time: years 0000 to 9999. Inputs put their receive time in place of a time outside it.
 */
export const isFourDigitYear = (time: Date): boolean => {
  const millis = time.getTime()
  return millis >= FIRST_FOUR_DIGIT_YEAR && millis <= LAST_FOUR_DIGIT_YEAR
}

/**
 * RFC 3339 time in UTC with milliseconds; NILVALUE for an invalid date or one outside years
 * 0000–9999 (which RFC 5424 cannot write), so what is formatted is always RFC 5424.
 */
export const formatTimestamp = (time: Date): string => {
  const millis = time.getTime()
  if (Number.isNaN(millis) || millis < FIRST_FOUR_DIGIT_YEAR || millis > LAST_FOUR_DIGIT_YEAR) return "-"
  if (millis < 0) return time.toISOString()
  const second = Math.floor(millis / 1000)
  if (second !== cachedSecond) {
    cachedSecond = second
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 20)
  }
  const ms = millis - second * 1000
  return `${cachedPrefix}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z`
}

/**
 * The last header's fields after the timestamp (`HOSTNAME APP-NAME PROCID MSGID SD`), and what
 * they were made from: the packets of one source share them, so each is checked and cut once.
 */
let tailHostname: string | undefined
let tailTag: string | undefined
let tailProcId: string | undefined
let tailMsgId: string | undefined
let tailStructuredData: string | undefined
let tail = ""
/** The last whole header, and its PRI and time: lines of one source often share the millisecond. */
let headTail = ""
let headPriority = -1
let headMillis = Number.NaN
let head = ""

/**
 * Tails of recent container files' packets, by hostname: a batch of a node's files takes turns
 * between ~50 of them, two lines each, and rebuilding each one's tail at every turn was ~110 KB/s
 * of the reference workload's 2.4 MB/s allocated (a sampling heap profile) and four field checks a
 * turn. Only for packets of files (with a receipt), whose fields are their follower's own strings:
 * a network packet's fields may be slices of the line it came in (up to a line's size each), which
 * a cache would keep alive unseen by the memory budget. Bounded: emptied when full.
 */
interface CachedTail {
  readonly tag: string
  readonly procId: string | undefined
  readonly msgId: string | undefined
  readonly structuredData: string | undefined
  readonly tail: string
}
const tails = new Map<string, CachedTail>()
const TAILS_KEPT = 1024

const tailOf = (packet: LogPacket): string => {
  if (
    packet.hostname === tailHostname && packet.tag === tailTag && packet.procId === tailProcId &&
    packet.msgId === tailMsgId && packet.structuredData === tailStructuredData
  ) return tail
  tailHostname = packet.hostname
  tailTag = packet.tag
  tailProcId = packet.procId
  tailMsgId = packet.msgId
  tailStructuredData = packet.structuredData
  const cached = packet.receipt === undefined ? undefined : tails.get(packet.hostname)
  if (
    cached !== undefined && cached.tag === packet.tag && cached.procId === packet.procId && cached.msgId === packet.msgId &&
    cached.structuredData === packet.structuredData
  ) {
    tail = cached.tail
    return tail
  }
  const sd = packet.structuredData === undefined || packet.structuredData.length === 0
    ? "-"
    : structuredDataEnd(packet.structuredData, 0) === packet.structuredData.length
    ? packet.structuredData
    : "-"
  tail = `${headerField(packet.hostname, Limits.hostname)} ${headerField(packet.tag, Limits.appName)} ${
    headerField(packet.procId, Limits.procId)
  } ${headerField(packet.msgId, Limits.msgId)} ${sd}`
  if (packet.receipt === undefined) return tail
  if (tails.size >= TAILS_KEPT) tails.clear()
  tails.set(packet.hostname, {
    tag: packet.tag,
    procId: packet.procId,
    msgId: packet.msgId,
    structuredData: packet.structuredData,
    tail
  })
  return tail
}

/**
 * A packet's RFC 5424 header: everything before the message (`<PRI>1 TIMESTAMP HOSTNAME APP-NAME
 * PROCID MSGID SD`, no trailing space). Encoders write it and the message side by side.
 */
export const header = (packet: LogPacket): string => {
  const fields = tailOf(packet)
  const priority = packet.facility * 8 + packet.severity
  const millis = packet.time.getTime()
  if (fields !== headTail || priority !== headPriority || millis !== headMillis) {
    head = `<${priority}>1 ${formatTimestamp(packet.time)} ${fields}`
    headTail = fields
    headPriority = priority
    headMillis = millis
  }
  return head
}

/**
 * Formats a packet as one RFC 5424 message (no framing, no trailing newline). A packet decoded
 * from RFC 5424 is returned exactly as it arrived.
 */
export const format = (packet: LogPacket): string => {
  if (packet.rfc5424 !== undefined) return packet.rfc5424
  const head = header(packet)
  return packet.message.length === 0 ? head : `${head} ${packet.message}`
}
