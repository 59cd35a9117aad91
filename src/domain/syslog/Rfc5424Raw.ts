/**
 * RFC 5424 messages read from their bytes, for the inputs that forward most of what they get.
 *
 * A frame is taken as a "byte string": one character per byte (latin1), never decoded as UTF-8.
 * Such a string is always one-byte in V8 (a UTF-8 BOM, as syslog-ng's loggen sends, or any
 * non-ASCII character would make the decoded line a two-byte string: twice the memory, slower to
 * scan and to encode), and written out again with a copy of its bytes. Only the header is read
 * when the message arrives — PRI, the time and where each field ends — and only the hostname,
 * which routes the packet, is taken out of it. The other fields are decoded from UTF-8 when first
 * asked for (a syslog drain forwards the bytes and asks for none of them).
 *
 * What a packet reads is exactly what `Rfc5424.parse` reads from the decoded line: the delimiters
 * are ASCII, and the bytes of a multi-byte UTF-8 character never are, so the fields end at the
 * same places; each field is decoded on its own, which gives what decoding the whole line and then
 * cutting gives (even for invalid UTF-8: a sequence cut at an ASCII byte is replaced the same way).
 * A line whose time had to be repaired (NILVALUE, unreadable) or whose STRUCTURED-DATA is not
 * well formed is not forwarded as is: it is decoded and parsed as before (`Rfc5424.parse`).
 */
import { Buffer } from "node:buffer"
import * as Rfc3339 from "../Rfc3339.ts"
import type { KubernetesSource, LogPacket } from "../LogPacket.ts"
import type { Receipt } from "../Receipt.ts"
import * as Rfc5424 from "./Rfc5424.ts"
import { fail, type SyslogParseError } from "./SyslogParseError.ts"

const SP = 32

/** A byte string (one character per byte) as the text its bytes are in UTF-8. */
export const decode = (bytes: string, start = 0, end = bytes.length): string => {
  for (let i = start; i < end; i++) {
    if (bytes.charCodeAt(i) > 127) return Buffer.from(bytes.slice(start, end), "latin1").toString("utf8")
  }
  return start === 0 && end === bytes.length ? bytes : bytes.slice(start, end)
}

/**
 * A packet read from RFC 5424 bytes. Its `raw` is the message's bytes (a byte string), which
 * syslog drains write as they are; `rfc5424` is the same decoded, when something asks for it.
 */
export class Rfc5424Packet implements LogPacket {
  readonly raw: string
  readonly hostname: string
  /** Shared by the packets of a millisecond (Rfc3339.dateOf). */
  readonly time: Date
  // Always undefined: on the prototype (below), so that each packet is smaller by as many fields.
  declare readonly kubernetes: KubernetesSource | undefined
  declare readonly receipt: Receipt | undefined
  declare readonly position: number | undefined
  private readonly pri: number
  /**
   * Where HOSTNAME and STRUCTURED-DATA end (each before a SP). Where APP-NAME, PROCID and MSGID
   * end is found again when asked for (`ends`): only drains that format fields ask, and every
   * field of a packet is 8 bytes of each line's garbage on the relay's path.
   */
  private readonly hostEnd: number
  private readonly sdEnd: number
  /**
   * Asked for by drains with more than one lane, for each packet (Lanes.sourceHash). Defined as
   * null, then set to undefined by the constructor: a field V8 has seen written only once is taken
   * as constant by optimized code, and the first packet whose tag was asked for (when a drain's
   * lanes first split, or look whether to) threw away the optimized parser and this constructor
   * ("dependent field type constness changed", --trace-deopt), to be compiled again.
   */
  private cachedTag: string | undefined | null = null

  constructor(raw: string, hostname: string, pri: number, time: Date, hostEnd: number, sdEnd: number) {
    this.raw = raw
    this.hostname = hostname
    this.time = time
    this.pri = pri
    this.hostEnd = hostEnd
    this.sdEnd = sdEnd
    this.cachedTag = undefined
  }

  /** Where APP-NAME, PROCID and MSGID end: the next three SPs after HOSTNAME (parse found them). */
  private ends(): readonly [appEnd: number, procEnd: number, msgIdEnd: number] {
    const appEnd = this.raw.indexOf(" ", this.hostEnd + 1)
    const procEnd = this.raw.indexOf(" ", appEnd + 1)
    return [appEnd, procEnd, this.raw.indexOf(" ", procEnd + 1)]
  }

  get severity(): number {
    return this.pri & 7
  }

  get facility(): number {
    return this.pri >> 3
  }

  get tag(): string {
    return (this.cachedTag ??= nilToEmpty(this.raw, this.hostEnd + 1, this.raw.indexOf(" ", this.hostEnd + 1)))
  }

  get procId(): string | undefined {
    const [appEnd, procEnd] = this.ends()
    return nilToUndefined(this.raw, appEnd + 1, procEnd)
  }

  get msgId(): string | undefined {
    const [, procEnd, msgIdEnd] = this.ends()
    return nilToUndefined(this.raw, procEnd + 1, msgIdEnd)
  }

  get structuredData(): string | undefined {
    const start = this.ends()[2] + 1
    return this.sdEnd - start <= 1 ? undefined : decode(this.raw, start, this.sdEnd)
  }

  get message(): string {
    const raw = this.raw
    if (this.sdEnd >= raw.length) return ""
    let start = this.sdEnd + 1
    // A UTF-8 BOM (EF BB BF) before the message is not part of it.
    if (raw.charCodeAt(start) === 0xef && raw.charCodeAt(start + 1) === 0xbb && raw.charCodeAt(start + 2) === 0xbf) start += 3
    return decode(raw, start, raw.length)
  }

  get rfc5424(): string {
    return decode(this.raw)
  }
}

for (const field of ["kubernetes", "receipt", "position"]) {
  Object.defineProperty(Rfc5424Packet.prototype, field, { value: undefined, enumerable: false, writable: false })
}

const nilToEmpty = (raw: string, start: number, end: number): string =>
  end - start === 1 && raw.charCodeAt(start) === 45 ? "" : decode(raw, start, end)

const nilToUndefined = (raw: string, start: number, end: number): string | undefined =>
  end - start === 1 && raw.charCodeAt(start) === 45 ? undefined : decode(raw, start, end)

/**
 * A text kept to compare lines with: its bytes in an array (comparing with a slice of a line, a
 * V8 sliced string, was ten times slower; `startsWith` is a call into the runtime).
 */
class Kept {
  private readonly bytes: Uint8Array
  private length = -1
  /** The same, as a string (a slice of the line it was kept from). */
  private text = ""

  constructor(max: number) {
    this.bytes = new Uint8Array(max)
  }

  /** Whether `raw[start, end)` is the text kept: compared from the end, where lines mostly differ. */
  is(raw: string, start: number, end: number): boolean {
    const n = end - start
    if (n !== this.length) return false
    const bytes = this.bytes
    for (let i = n - 1; i >= 0; i--) if (raw.charCodeAt(start + i) !== bytes[i]) return false
    return true
  }

  /**
   * Whether the text kept is at `start` in `raw`, followed by a SP. Searched for as a string (a
   * builtin), not compared character by character: a line's head (~40 characters) took ~130 ns
   * that way, ~70 ns this way (node /tmp/relay3/cmp.mjs); a line without it is searched to its
   * end, but such lines are looked at only now and then (see `headMisses`).
   */
  isAt(raw: string, start: number): boolean {
    const n = this.length
    return n >= 0 && raw.charCodeAt(start + n) === SP && raw.indexOf(this.text, start) === start
  }

  /** Keeps `raw[start, end)`, if it is short enough. */
  keep(raw: string, start: number, end: number): void {
    const n = end - start
    if (n > this.bytes.length) {
      this.length = -1
      return
    }
    for (let i = 0; i < n; i++) this.bytes[i] = raw.charCodeAt(start + i)
    this.length = n
    this.text = raw.slice(start, end)
  }
}

/**
 * The last line's TIMESTAMP SP HOSTNAME (its bytes), and what was read from it: a sender's lines
 * often share both (one that writes milliseconds, in a burst), and then one comparison replaces
 * reading them. (Compared in place: a slice of each line to compare with a flat copy was 32 bytes
 * of garbage a line.)
 */
const lastHead = new Kept(512)
/** Where, in the head kept, the time ends (its SP) and the hostname ends. */
let lastHeadTimeLength = 0
let lastHeadLength = 0
let lastHeadMillis = 0
let lastHeadHostname = ""
/** Lines in a row whose head was not the last one kept. */
let headMisses = 0

/**
 * The last HOSTNAME, as its bytes and as the packet's field: a connection's lines mostly have
 * the same, and the one string for all of them also spares the route table hashing a new string
 * each time.
 */
const lastHost = new Kept(255)
let lastHostname = ""

/**
 * Parses the RFC 5424 message in the byte string `raw` (no trailing CR, LF or NUL). `receivedAt`
 * stands in for a time that cannot be read, as in `Rfc5424.parse`.
 */
export const parse = (raw: string, receivedAt: Date): LogPacket | SyslogParseError => {
  // PRI as readPriority reads it, without an object for its result: `<`, 1 to 3 digits without
  // a leading zero (but "<0>"), `>`, at most 191; anything else is reported by readPriority.
  let pri = 0
  let i = 1
  for (; i <= 4; i++) {
    const c = raw.charCodeAt(i)
    if (c < 48 || c > 57) break
    pri = pri * 10 + (c - 48)
  }
  if (raw.charCodeAt(0) !== 60 || i === 1 || i > 4 || raw.charCodeAt(i) !== 62 || pri > 191 || (i > 2 && raw.charCodeAt(1) === 48)) {
    const head = Rfc5424.readPriority(raw)
    return "reason" in head ? failDecoded(head, raw) : fail("InvalidPriority", decode(raw))
  }
  i++
  if (!Rfc5424.isRfc5424(raw, i)) return fail("InvalidVersion", decode(raw))
  i += 2
  const tsStart = i
  // Lines whose heads all differ (microseconds) are not worth a comparison and a copy each:
  // after a few in a row, tried now and then. The head kept has one SP, between a time and a
  // hostname that are not empty: found again here, followed by a SP, it ends where it ended.
  const tryHead = headMisses < 4 || (headMisses & 255) === 0
  const hit = tryHead && lastHead.isAt(raw, tsStart)
  let tsEnd = tsStart + lastHeadTimeLength
  let hostEnd = tsStart + lastHeadLength
  if (!hit) {
    tsEnd = raw.indexOf(" ", i)
    if (tsEnd <= tsStart) return fail("MissingField", decode(raw))
    hostEnd = raw.indexOf(" ", tsEnd + 1)
    if (hostEnd <= tsEnd + 1) return fail("MissingField", decode(raw))
  }
  const appEnd = raw.indexOf(" ", hostEnd + 1)
  if (appEnd <= hostEnd + 1) return fail("MissingField", decode(raw))
  const procEnd = raw.indexOf(" ", appEnd + 1)
  if (procEnd <= appEnd + 1) return fail("MissingField", decode(raw))
  const msgIdEnd = raw.indexOf(" ", procEnd + 1)
  if (msgIdEnd <= procEnd + 1) return fail("MissingField", decode(raw))
  const sdEnd = Rfc5424.structuredDataEnd(raw, msgIdEnd + 1)
  // Repaired lines (STRUCTURED-DATA left out or broken; no time, or one that cannot be read) are
  // formatted anew when forwarded: parsed from their text, as any other line.
  if (sdEnd < 0 || (sdEnd < raw.length && raw.charCodeAt(sdEnd) !== SP)) return Rfc5424.parse(decode(raw), receivedAt)
  if (tsEnd - tsStart === 1 && raw.charCodeAt(tsStart) === 45) return Rfc5424.parse(decode(raw), receivedAt)
  let millis = lastHeadMillis
  let hostname = lastHeadHostname
  if (hit) {
    headMisses = 0
  } else {
    // The usual shape, read by hand (it is all ASCII then); any other time is read from the
    // decoded line, as Rfc5424.parse reads it (Date.parse decides what it means).
    millis = Rfc5424.isZoned(raw, tsStart, tsEnd) ? Rfc3339.quickTimestamp(raw, tsStart, tsEnd) : Number.NaN
    if (Number.isNaN(millis)) return Rfc5424.parse(decode(raw), receivedAt)
    hostname = lastHostname
    if (!lastHost.is(raw, tsEnd + 1, hostEnd)) {
      hostname = lastHostname = nilToEmpty(raw, tsEnd + 1, hostEnd)
      lastHost.keep(raw, tsEnd + 1, hostEnd)
    }
    if (tryHead) {
      lastHead.keep(raw, tsStart, hostEnd)
      lastHeadTimeLength = tsEnd - tsStart
      lastHeadLength = hostEnd - tsStart
      lastHeadMillis = millis
      lastHeadHostname = hostname
    }
    headMisses++
  }
  return new Rfc5424Packet(raw, hostname, pri, Rfc3339.dateOf(millis), hostEnd, sdEnd)
}

/** A parse error whose example line is the decoded text, as `Rfc5424.parse` reports it. */
const failDecoded = (error: SyslogParseError, raw: string): SyslogParseError => fail(error.reason, decode(raw))
