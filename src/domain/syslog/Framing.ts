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
}

export class FrameDecoder {
  readonly maxFrameBytes: number
  /** Frames cut to `maxFrameBytes` so far. */
  truncated = 0
  /** Bytes of an unfinished frame, carried to the next chunk. */
  private pending: Buffer | undefined = undefined
  /** Bytes still to skip of an octet-counted frame that was too long. */
  private skipBytes = 0
  /** Whether to skip up to the next LF: the rest of a newline-framed line that was too long. */
  private skipLine = false

  constructor(options: FrameDecoderOptions) {
    this.maxFrameBytes = Math.max(16, options.maxFrameBytes)
  }

  /** The frames completed by this chunk, in order. */
  decode(chunk: Uint8Array): Array<string> {
    const frames: Array<string> = []
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, buf])
      this.pending = undefined
    }
    const n = buf.length
    const max = this.maxFrameBytes
    let i = 0
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
          this.keep(buf, i)
          return frames
        }
        if (buf[j] === SP) {
          const start = j + 1
          const wanted = Math.min(length, max)
          if (n - start < wanted) {
            this.keep(buf, i)
            return frames
          }
          if (length <= max) {
            frames.push(buf.toString("utf8", start, start + length))
            i = start + length
          } else {
            frames.push(buf.toString("utf8", start, utf8Boundary(buf, start, start + max)))
            this.truncated++
            i = start + max
            this.skipBytes = length - max
          }
          continue
        }
      }

      const lf = buf.indexOf(LF, i)
      const lineEnd = lf < 0 ? n : lf
      if (lineEnd - i > max) {
        frames.push(buf.toString("utf8", i, utf8Boundary(buf, i, i + max)))
        this.truncated++
        if (lf < 0) {
          this.skipLine = true
          return frames
        }
        i = lf + 1
        continue
      }
      if (lf < 0) {
        this.keep(buf, i)
        return frames
      }
      const end = lf > i && buf[lf - 1] === CR ? lf - 1 : lf
      if (end > i) frames.push(buf.toString("utf8", i, end))
      i = lf + 1
    }
    return frames
  }

  /** At the end of the stream: a last line without its LF is still a frame. */
  end(): Array<string> {
    const rest = this.pending
    this.pending = undefined
    this.skipBytes = 0
    this.skipLine = false
    if (rest === undefined || rest.length === 0) return []
    let end = rest.length
    while (end > 0 && (rest[end - 1] === CR || rest[end - 1] === 0)) end--
    return end > 0 ? [rest.toString("utf8", 0, end)] : []
  }

  /** Bytes held for an unfinished frame. */
  get pendingBytes(): number {
    return this.pending?.length ?? 0
  }

  private keep(buf: Buffer, from: number): void {
    // Copy, so a small remainder does not keep a whole socket chunk alive.
    this.pending = Buffer.from(buf.subarray(from))
  }
}

/** Moves `end` back so it does not split a UTF-8 sequence. */
const utf8Boundary = (buf: Buffer, start: number, end: number): number => {
  let e = end
  while (e > start && e < buf.length && (buf[e]! & 0xc0) === 0x80) e--
  return e
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
const LINE_BREAKS = /[\r\n\0]/g
/** CR, LF and NUL turned into spaces, for newline framing. */
const oneLine = (text: string): string => (LINE_BREAK.test(text) ? text.replace(LINE_BREAKS, " ") : text)

export const frame = (framing: Framing, message: string): string =>
  framing === "octet-counting" ? octetCounted(message) : newlineTerminated(message)

/** Where `FrameWriter` encodes, before copying out the exact bytes; grows with the largest batch. */
let scratch = Buffer.allocUnsafeSlow(256 * 1024)
/** A scratch buffer grown past this is let go after use. */
const SCRATCH_KEPT = 8 * 1024 * 1024

/**
 * Framed messages encoded into one Buffer — what `frame` gives, joined and UTF-8 encoded, but each
 * message encoded straight to bytes: no string of the whole batch is built (one of a few hundred
 * KB would be flattened and copied once more before being encoded, and land in V8's large-object
 * space, which costs major GCs; encoding this way is ~3× faster). A message may come as a head and
 * a body (`head SP body`, or `head` alone when the body is empty), so that a formatted header and
 * the message it precedes need not be joined into one more string first. Uses a shared scratch
 * buffer: one writer at a time, from its construction to `take` (synchronously).
 */
export class FrameWriter {
  private n = 0
  private readonly framing: Framing

  constructor(framing: Framing) {
    this.framing = framing
  }

  add(head: string, body = ""): void {
    const newline = this.framing === "newline"
    const first = newline ? oneLine(head) : head
    const second = body.length === 0 ? "" : newline ? oneLine(body) : body
    // At most 3 bytes per UTF-16 unit, plus the separating space and the length prefix or newline.
    const room = this.n + (first.length + second.length) * 3 + 25
    if (room > scratch.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(room, scratch.length * 2))
      scratch.copy(bigger, 0, 0, this.n)
      scratch = bigger
    }
    let n = this.n
    if (!newline) {
      const length = Buffer.byteLength(first, "utf8") + (second.length === 0 ? 0 : 1 + Buffer.byteLength(second, "utf8"))
      n += scratch.write(`${length} `, n, "latin1")
    }
    n += scratch.write(first, n, "utf8")
    if (second.length > 0) {
      scratch[n++] = 32
      n += scratch.write(second, n, "utf8")
    }
    if (newline) scratch[n++] = 10
    this.n = n
  }

  /** The bytes written, copied out of the scratch buffer. */
  take(): Buffer {
    const bytes = Buffer.from(scratch.subarray(0, this.n))
    this.n = 0
    if (scratch.length > SCRATCH_KEPT) scratch = Buffer.allocUnsafeSlow(256 * 1024)
    return bytes
  }
}

/** The messages, each framed, as one Buffer (see FrameWriter). */
export const frameAll = (messages: ReadonlyArray<string>, framing: Framing): Buffer => {
  const writer = new FrameWriter(framing)
  for (const message of messages) writer.add(message)
  return writer.take()
}
