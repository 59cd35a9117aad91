/**
 * RFC 6587 framing of syslog over a byte stream, both ways.
 *
 * The decoder takes chunks as they come off a socket and yields whole frames. It detects the framing
 * per frame, as rsyslog and syslog-ng do: a frame that starts with `MSG-LEN SP` (digits, then a
 * space) is octet-counted; anything else runs to the next LF (a CR before it is dropped). So a sender
 * may mix both on one connection, and a newline-framed line that happens to start with a digit
 * ("2024-01-01 ...") is still read as a line.
 *
 * Memory stays bounded by `maxFrameBytes`: a longer frame is cut at that size (on a UTF-8 character
 * boundary), counted in `truncated`, and the rest of it is skipped as it arrives. Nothing here can
 * throw on any input.
 */
import { Buffer } from "node:buffer"

const LF = 10
const CR = 13
const SP = 32
/** MSG-LEN has at most this many digits; longer digit runs are not a length. */
const MAX_LENGTH_DIGITS = 10

export interface FrameDecoderOptions {
  /** Frames longer than this many bytes are truncated to it. */
  readonly maxFrameBytes: number
  /**
   * Frames as byte strings, one character per byte (latin1), instead of decoded from UTF-8, and
   * without trailing CR, LF and NUL: for an input that reads them with Syslog.parseRaw (which
   * ignores those) and forwards their bytes.
   */
  readonly bytes?: boolean | undefined
}

/** Node's own slicing methods, which `toString(encoding, start, end)` dispatches to. */
interface Slicing {
  latin1Slice(start: number, end: number): string
  utf8Slice(start: number, end: number): string
}

/** What kind of frame the held bytes start. */
const Held = {
  /** A run of digits: MSG-LEN, or the start of a line (which one, the next byte tells). */
  Digits: 0,
  /** An octet-counted frame whose header is read. */
  Octets: 1,
  /** A newline-framed line. */
  Line: 2
} as const
type Held = typeof Held[keyof typeof Held]

/** A store of held bytes above this size is let go once its frame is done (see `release`). */
const KEPT_STORE_BYTES = 4096

export class FrameDecoder {
  readonly maxFrameBytes: number
  /** Frames cut to `maxFrameBytes` so far. */
  truncated = 0
  /**
   * The bytes of an unfinished frame, carried to the next chunk, in `store[0, held)`. The store is
   * grown in place as bytes come (a frame trickling in byte by byte costs a copy of each byte, not
   * of the whole frame each time) and kept between frames while small, so the usual case — every
   * socket chunk ending inside a frame — allocates nothing.
   */
  private store: Buffer | undefined = undefined
  private held = 0
  private kind: Held = Held.Line
  /** For `Octets`: where the message starts in the store, and its declared length. */
  private bodyStart = 0
  private length = 0
  /** Bytes still to skip of an octet-counted frame that was too long. */
  private skipBytes = 0
  /** Whether to skip up to the next LF: the rest of a newline-framed line that was too long. */
  private skipLine = false

  private readonly bytes: boolean

  constructor(options: FrameDecoderOptions) {
    this.maxFrameBytes = Math.max(16, options.maxFrameBytes)
    this.bytes = options.bytes === true
  }

  /**
   * `buf[start, end)` as a frame: decoded, or a byte string — without the CR, LF and NUL at its
   * end, which the parsers ignore (loggen ends each octet-counted frame with LF): cut off by the
   * parser, they made each line a slice of the frame, slower to read.
   */
  private text(buf: Buffer, start: number, end: number): string {
    const b = buf as unknown as Slicing
    if (!this.bytes) return b.utf8Slice(start, end)
    while (end > start) {
      const c = buf[end - 1]
      if (c !== LF && c !== CR && c !== 0) break
      end--
    }
    return b.latin1Slice(start, end)
  }

  /** The frames completed by this chunk, in order, added to the end of `frames`. */
  decode(chunk: Uint8Array, frames: Array<string> = []): Array<string> {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    let i = 0
    if (this.held > 0) {
      i = this.resume(buf, frames)
      if (i < 0) return frames
    }
    const n = buf.length
    const max = this.maxFrameBytes
    while (i < n) {
      if (this.skipBytes > 0) {
        const skip = Math.min(this.skipBytes, n - i)
        this.skipBytes -= skip
        i += skip
        continue
      }
      if (this.skipLine) {
        const lf = buf.indexOf(LF, i)
        if (lf < 0) return frames
        this.skipLine = false
        i = lf + 1
        continue
      }
      const first = buf[i]!
      if (first === LF || first === CR || first === 0) {
        // Blank between frames, e.g. a sender that ends octet-counted frames with LF anyway.
        i++
        continue
      }

      if (first >= 49 && first <= 57) {
        let length = 0
        let j = i
        while (j < n && j - i < MAX_LENGTH_DIGITS) {
          const c = buf[j]!
          if (c < 48 || c > 57) break
          length = length * 10 + (c - 48)
          j++
        }
        if (j === n && j - i < MAX_LENGTH_DIGITS) {
          // Cannot tell yet whether this is MSG-LEN: wait for more bytes.
          this.keep(buf, i, Held.Digits)
          return frames
        }
        if (buf[j] === SP) {
          const start = j + 1
          const wanted = Math.min(length, max)
          if (n - start < wanted) {
            this.bodyStart = start - i
            this.length = length
            this.keep(buf, i, Held.Octets)
            return frames
          }
          this.octetFrame(buf, start, length, frames)
          i = start + wanted
          continue
        }
      }

      const lf = buf.indexOf(LF, i)
      const lineEnd = lf < 0 ? n : lf
      if (lineEnd - i > max) {
        frames.push(this.text(buf, i, utf8Cut(buf, i, i + max)))
        this.truncated++
        if (lf < 0) {
          this.skipLine = true
          return frames
        }
        i = lf + 1
        continue
      }
      if (lf < 0) {
        this.keep(buf, i, Held.Line)
        return frames
      }
      const end = lf > i && buf[lf - 1] === CR ? lf - 1 : lf
      if (end > i) frames.push(this.text(buf, i, end))
      i = lf + 1
    }
    return frames
  }

  /** At the end of the stream: a last line without its LF is still a frame. */
  end(): Array<string> {
    const rest = this.store
    let end = this.held
    this.release()
    this.skipBytes = 0
    this.skipLine = false
    if (rest === undefined || end === 0) return []
    while (end > 0 && (rest[end - 1] === CR || rest[end - 1] === 0)) end--
    return end > 0 ? [this.text(rest, 0, end)] : []
  }

  /** Bytes held for an unfinished frame. */
  get pendingBytes(): number {
    return this.held
  }

  /** An octet-counted frame whose message, `length` bytes from `start`, is in `buf` (up to the limit). */
  private octetFrame(buf: Buffer, start: number, length: number, frames: Array<string>): void {
    const max = this.maxFrameBytes
    if (length <= max) {
      frames.push(this.text(buf, start, start + length))
    } else {
      frames.push(this.text(buf, start, utf8Cut(buf, start, start + max)))
      this.truncated++
      this.skipBytes = length - max
    }
  }

  /**
   * Goes on with the frame held, taking from `buf` only the bytes it needs. Returns where in `buf`
   * the next frame starts, or -1 when all of `buf` went to the frame held (still unfinished, or cut
   * and the rest of its line to be skipped).
   */
  private resume(buf: Buffer, frames: Array<string>): number {
    let i = 0
    if (this.kind === Held.Digits) {
      // Digits so far: the next non-digit (or the tenth digit) says what they start.
      while (i < buf.length && this.held < MAX_LENGTH_DIGITS && buf[i]! >= 48 && buf[i]! <= 57) this.append(buf, i, ++i)
      if (i === buf.length && this.held < MAX_LENGTH_DIGITS) return -1
      if (this.held < MAX_LENGTH_DIGITS && buf[i] === SP) {
        let length = 0
        for (let k = 0; k < this.held; k++) length = length * 10 + (this.store![k]! - 48)
        this.append(buf, i, ++i)
        this.kind = Held.Octets
        this.bodyStart = this.held
        this.length = length
      } else {
        this.kind = Held.Line
      }
    }
    const max = this.maxFrameBytes
    if (this.kind === Held.Octets) {
      const needed = this.bodyStart + Math.min(this.length, max) - this.held
      if (buf.length - i < needed) {
        this.append(buf, i, buf.length)
        return -1
      }
      this.append(buf, i, i + needed)
      this.octetFrame(this.store!.subarray(0, this.held), this.bodyStart, this.length, frames)
      this.release()
      return i + needed
    }
    // A line: up to the next LF, unless that makes it longer than the limit.
    const lf = buf.indexOf(LF, i)
    const lineEnd = lf < 0 ? buf.length : lf
    if (this.held + lineEnd - i > max) {
      this.append(buf, i, i + max - this.held)
      frames.push(this.text(this.store!, 0, utf8Cut(this.store!, 0, max)))
      this.truncated++
      this.release()
      if (lf < 0) {
        this.skipLine = true
        return -1
      }
      return lf + 1
    }
    if (lf < 0) {
      this.append(buf, i, buf.length)
      return -1
    }
    this.append(buf, i, lf)
    let end = this.held
    if (end > 0 && this.store![end - 1] === CR) end--
    if (end > 0) frames.push(this.text(this.store!, 0, end))
    this.release()
    return lf + 1
  }

  /** Holds `buf[from, end)` as the start of an unfinished frame of `kind`. */
  private keep(buf: Buffer, from: number, kind: Held): void {
    this.kind = kind
    this.held = 0
    const size = buf.length - from
    if (size > KEPT_STORE_BYTES && this.store === undefined && buf.byteOffset === 0 && size * 2 >= buf.buffer.byteLength) {
      // A large remainder that is most of a socket chunk of its own: held as it is, not copied
      // (copying would double the memory an unfinished frame costs until the chunk is collected).
      this.store = buf.subarray(from)
      this.held = size
      return
    }
    this.append(buf, from, buf.length)
  }

  /** Adds `buf[from, to)` to the bytes held, growing the store (to at most a frame's size) if needed. */
  private append(buf: Buffer, from: number, to: number): void {
    const size = to - from
    if (size <= 0) return
    const needed = this.held + size
    if (this.store === undefined || needed > this.store.length) {
      const capacity = Math.min(Math.max(needed, (this.store?.length ?? 0) * 2, 256), this.maxFrameBytes + MAX_LENGTH_DIGITS + 1)
      // Not from Node's shared pool: a small store kept by a connection would pin an 8 KB slab.
      const grown = Buffer.allocUnsafeSlow(Math.max(capacity, needed))
      if (this.store !== undefined) this.store.copy(grown, 0, 0, this.held)
      this.store = grown
    }
    buf.copy(this.store, this.held, from, to)
    this.held = needed
  }

  /** Nothing held any more; a large store is let go, so an idle connection holds little. */
  private release(): void {
    this.held = 0
    if (this.store !== undefined && this.store.length > KEPT_STORE_BYTES) this.store = undefined
  }
}

/**
 * Where to cut `buf[start, end)` so that no UTF-8 character is cut in half: `end`, or the start of
 * a character that `end` would split. Looks only at bytes before `end`, so it needs nothing after.
 */
export const utf8Cut = (buf: Uint8Array, start: number, end: number): number => {
  let lead = end - 1
  while (lead > start && lead > end - 4 && (buf[lead]! & 0xc0) === 0x80) lead--
  if (lead < start) return end
  const b = buf[lead]!
  const size = b < 0xc0 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4
  return lead + size > end ? lead : end
}

export type Framing = "octet-counting" | "newline"

/** `MSG-LEN SP MSG`, the length in UTF-8 bytes (RFC 6587 §3.4.1, RFC 5425). */
export const octetCounted = (message: string): string => `${Buffer.byteLength(message, "utf8")} ${message}`

/**
 * `MSG LF`. A line break inside the message would end the frame early, so CR, LF and NUL in it are
 * turned into spaces, as the original logtrain did.
 */
export const newlineTerminated = (message: string): string => `${oneLine(message)}\n`

const LINE_BREAK = /[\r\n\0]/
/** CR, LF and NUL as bytes. */
const LINE_BREAK_BYTES = [CR, LF, 0] as const
const LINE_BREAKS = /[\r\n\0]/g
/** CR, LF and NUL turned into spaces, for newline framing. */
const oneLine = (text: string): string => (LINE_BREAK.test(text) ? text.replace(LINE_BREAKS, " ") : text)

export const frame = (framing: Framing, message: string): string =>
  framing === "octet-counting" ? octetCounted(message) : newlineTerminated(message)

/** Node's own writing methods, which `write(string, offset, encoding)` dispatches to (after checks of its arguments). */
interface Writing {
  latin1Write(text: string, offset: number): number
  utf8Write(text: string, offset: number): number
}

/** Where `FrameWriter` encodes, before copying out the exact bytes; grows with the largest batch. */
let scratch = Buffer.allocUnsafeSlow(256 * 1024)
/** Where, in the scratch, newline framing's LFs go (see `FrameWriter.finish`); grows with the largest batch. */
let lineEnds = new Int32Array(4096)
/** A scratch buffer grown past this is let go after use. */
const SCRATCH_KEPT = 8 * 1024 * 1024

/** Writes the decimal digits of `n` (a non-negative integer) at `at`; returns how many. */
const writeDigits = (bytes: Buffer, at: number, n: number): number => {
  let digits = 1
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++
  for (let i = at + digits - 1, rest = n; i >= at; i--, rest = Math.floor(rest / 10)) bytes[i] = 48 + (rest % 10)
  return digits
}

/**
 * Framed messages encoded into one Buffer — what `frame` gives, joined and UTF-8 encoded, but each
 * message encoded straight to bytes: no string of the whole batch is built (one of a few hundred
 * KB would be flattened and copied once more before being encoded, and land in V8's large-object
 * space, which costs major GCs; encoding this way is ~3× faster). A message may come as a head and
 * a body (`head SP body`, or `head` alone when the body is empty), so that a formatted header and
 * the message it precedes need not be joined into one more string first. Consecutive messages
 * mostly share their head (a file's lines, one source's burst): a head the same as the last one
 * is copied from where it was written, not encoded again. Uses a shared scratch buffer: one
 * writer at a time, from its construction to `take` (synchronously).
 *
 * Newline framing turns CR, LF and NUL in a message into spaces: in the bytes, once per batch
 * (`finish`), not in each message's text. They are single bytes in UTF-8 (never part of another
 * character) and in a byte string, so the bytes come out the same; searching a batch's bytes for
 * them takes three native searches (~14 ns a message of 200 bytes), where testing each message
 * with a regular expression took ~25-75 ns (node /tmp/relay3/mb.mjs). The LF ending each message
 * is written once that is done: until then its place holds a space.
 */
export class FrameWriter {
  private n = 0
  private readonly framing: Framing
  /** The last head written, and where its bytes (as written) are in the scratch. */
  // ("" when none: a head written first is never equal to it unless empty, and an empty head has no bytes to copy;
  // with undefined, comparing heads was compiled for strings and thrown away at each batch's first.)
  private lastHead = ""
  private lastHeadAt = 0
  private lastHeadBytes = 0
  /** Messages written with newline framing: their LFs' places are `lineEnds[0, lines)`. */
  private lines = 0

  constructor(framing: Framing) {
    this.framing = framing
  }

  add(head: string, body = ""): void {
    const newline = this.framing === "newline"
    // At most 3 bytes per UTF-16 unit, plus the separating space and the length prefix or newline.
    const room = this.n + (head.length + body.length) * 3 + 25
    this.reserve(room)
    const out = scratch as unknown as Writing
    let n = this.n
    const same = head === this.lastHead
    let bodyBytes = 0
    if (!newline) {
      const headBytes = same ? this.lastHeadBytes : Buffer.byteLength(head, "utf8")
      bodyBytes = body.length === 0 ? 0 : Buffer.byteLength(body, "utf8")
      n += writeDigits(scratch, n, headBytes + (body.length === 0 ? 0 : 1 + bodyBytes))
      scratch[n++] = 32
    }
    if (same) {
      scratch.copyWithin(n, this.lastHeadAt, this.lastHeadAt + this.lastHeadBytes)
      this.lastHeadAt = n
      n += this.lastHeadBytes
    } else {
      const written = out.utf8Write(head, n)
      this.lastHead = head
      this.lastHeadAt = n
      this.lastHeadBytes = written
      n += written
    }
    if (body.length > 0) {
      scratch[n++] = 32
      // As many bytes as characters: ASCII, whose bytes are its characters' codes (a copy, no encoding).
      n += bodyBytes === body.length ? out.latin1Write(body, n) : out.utf8Write(body, n)
    }
    if (newline) n = this.lineEnd(n)
    this.n = n
  }

  /**
   * A message given as its bytes, a byte string (one character per byte, see Rfc5424Raw): they
   * are copied as they are, no encoding (CR, LF and NUL are single bytes in UTF-8, never part of
   * another character, so newline framing turns them into spaces here as in `add`).
   */
  addBytes(bytes: string): void {
    const newline = this.framing === "newline"
    const room = this.n + bytes.length + 12
    this.reserve(room)
    const out = scratch as unknown as Writing
    let n = this.n
    if (!newline) {
      // The length as digits, as `add` writes it (not a string made for each message).
      n += writeDigits(scratch, n, bytes.length)
      scratch[n++] = 32
    }
    n += out.latin1Write(bytes, n)
    if (newline) n = this.lineEnd(n)
    this.n = n
  }

  /** Keeps the place of a message's LF at `n` (a space until `finish`); returns the byte after it. */
  private lineEnd(n: number): number {
    if (this.lines === lineEnds.length) {
      const bigger = new Int32Array(lineEnds.length * 2)
      bigger.set(lineEnds)
      lineEnds = bigger
    }
    lineEnds[this.lines++] = n
    scratch[n] = 32
    return n + 1
  }

  /** Newline framing: CR, LF and NUL in the messages become spaces, then each message gets its LF. */
  private finish(): void {
    if (this.lines === 0) return
    const bytes = scratch.subarray(0, this.n)
    for (const c of LINE_BREAK_BYTES) {
      for (let at = bytes.indexOf(c); at >= 0; at = bytes.indexOf(c, at + 1)) bytes[at] = 32
    }
    for (let k = 0; k < this.lines; k++) bytes[lineEnds[k]!] = 10
  }

  /** Bytes written so far. */
  get length(): number {
    return this.n
  }

  /** The bytes written, copied out of the scratch buffer. */
  take(): Buffer {
    this.finish()
    const bytes = Buffer.allocUnsafe(this.n)
    scratch.copy(bytes, 0, 0, this.n)
    this.reset()
    return bytes
  }

  /** The bytes written, copied into `target` at `at` (which has room for them); returns that view of it. */
  copyTo(target: Buffer, at: number): Buffer {
    this.finish()
    scratch.copy(target, at, 0, this.n)
    const view = target.subarray(at, at + this.n)
    this.reset()
    return view
  }

  /** Grows the scratch buffer, keeping what is written, to hold at least `room` bytes. */
  private reserve(room: number): void {
    if (room <= scratch.length) return
    const bigger = Buffer.allocUnsafeSlow(Math.max(room, scratch.length * 2))
    scratch.copy(bigger, 0, 0, this.n)
    scratch = bigger
  }

  private reset(): void {
    this.n = 0
    this.lines = 0
    this.lastHead = ""
    if (scratch.length > SCRATCH_KEPT) scratch = Buffer.allocUnsafeSlow(256 * 1024)
    if (lineEnds.length > 65536) lineEnds = new Int32Array(4096)
  }
}

/** The messages, each framed, as one Buffer (see FrameWriter). */
export const frameAll = (messages: ReadonlyArray<string>, framing: Framing): Buffer => {
  const writer = new FrameWriter(framing)
  for (const message of messages) writer.add(message)
  return writer.take()
}
