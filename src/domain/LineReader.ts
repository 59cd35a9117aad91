/**
 * A container log file's bytes, read in chunks, turned into lines — each with its position in the
 * file — and resumable from any point where no line is pending.
 *
 * - Physical lines (up to a newline) are decoded (ContainerLog.decodeLine) and their pieces joined
 *   per stream (ContainerLog.LineJoiner), so lines the runtime split come out whole.
 * - A line's position is the byte after its last piece. Positions only grow, in the order lines
 *   come out; lines that come out together (cut from one long line) get fractions of a byte apart.
 *   Reading the same bytes again from a resume point gives the same lines at the same positions,
 *   so a reader that starts again (a drain fed its backlog, a restart) skips what was delivered
 *   by position.
 * - `resumeOffset` is where reading must start again to give every line not yet out: the last
 *   byte at which nothing was pending — no line being joined, no physical line half read. From
 *   such a point the same bytes give exactly the same lines, so a position tells what was had.
 * - Long lines: a CRI line longer than `maxLineBytes` (containerd with max_container_log_line_size
 *   -1 writes them) is not held whole: its text is cut into pieces of `maxLineBytes` as it is read,
 *   at the same places whatever the chunks read. A Docker json-file line that long (Docker cuts
 *   at 16 KiB, so only garbage is) is dropped, counted as malformed.
 * - Multiline (when a rule is given): joined lines are gathered into events per stream
 *   (Multiline.EventJoiner). An event's position is given when it comes out — the position of
 *   the line that ended it, or of the read that timed it out — so positions still only grow in
 *   the order things come out; and while an event is being gathered, `resumeOffset` stays where
 *   its first line began, so reading again from there gives the whole event again.
 */
import * as ContainerLog from "./ContainerLog.ts"
import * as Multiline from "./Multiline.ts"
import * as Rfc3339 from "./Rfc3339.ts"

export interface PositionedLine extends ContainerLog.Line {
  readonly position: number
}

/** Lines coming out at one byte get positions this far apart. */
export const POSITION_STEP = 1 / 4096

/** What a reader reports: lines (as their fields: no object is made for one), and lines it could not read. */
export interface ReaderSink {
  readonly line: (stream: ContainerLog.StreamName, time: number, text: string, position: number) => void
  /** A physical line that could not be read (not CRI nor Docker json-file, or an endless json line). */
  readonly malformed: (message: string) => void
}

export interface ReaderOptions {
  /** Longest line sent: longer ones are cut. */
  readonly maxLineBytes: number
  /** Lines joined into events by this rule, each at most `maxBytes` (beyond: cut, `cut()` told). */
  readonly multiline?: {
    readonly rule: Multiline.Rule
    readonly maxBytes: number
    readonly cut?: (() => void) | undefined
  } | undefined
}

/** A CRI line being read piece by piece, because it is longer than a line may be. */
interface LongLine {
  readonly start: number
  readonly stream: ContainerLog.StreamName
  readonly time: number
  /** The line's tag was P: its last piece continues on the next line. */
  readonly partial: boolean
}

/** Longest CRI header (time, stream, tag) we look for before the text of a long line. */
const HEADER_MAX = 128

export class LineReader {
  /** The next byte to read. */
  offset: number
  /** Bytes read of a physical line whose newline has not come yet, and where they start. */
  private carry: Buffer | undefined = undefined
  private carryStart = 0
  private long: LongLine | undefined = undefined
  /** Dropping the rest of an unusable endless line. */
  private skipping = false
  /** The last offset at which nothing was pending (see resumeOffset). */
  private quietAt: number
  private readonly joiner: ContainerLog.LineJoiner
  private readonly events: Multiline.EventJoiner | undefined
  private end = 0
  private k = 0
  /** The time given to lines emitted now (for partial-line timeouts). */
  private now = 0
  private readonly options: ReaderOptions
  private readonly sink: ReaderSink
  /**
   * Longest physical line of another format held while waiting for its newline: Docker json-file
   * lines are at most 16 KiB of text, escaped (up to six bytes a character).
   */
  private readonly maxPhysicalBytes: number

  constructor(offset: number, options: ReaderOptions, sink: ReaderSink) {
    this.offset = offset
    this.quietAt = offset
    this.options = options
    this.maxPhysicalBytes = Math.max(4 * options.maxLineBytes, 256 * 1024)
    this.sink = sink
    const out = (line: ContainerLog.Line) => this.lineOut(line.stream, line.time, line.text)
    const multiline = options.multiline
    if (multiline === undefined) {
      this.events = undefined
      this.joiner = new ContainerLog.LineJoiner(options.maxLineBytes, out)
    } else {
      const cut = multiline.cut
      const events = new Multiline.EventJoiner(multiline.rule, multiline.maxBytes, (line) => {
        let position: number
        if (this.flushAt === undefined) {
          // Ended by the line just read (ending at `end`): just before that byte.
          if (this.sentAt !== this.end) {
            this.sentAt = this.end
            this.sentK = 0
          }
          position = this.end - 0.5 + this.sentK++ * POSITION_STEP
        } else {
          // Sent by a timeout or the end of the file: at the place read to.
          if (this.flushedAt !== this.flushAt) {
            this.flushedAt = this.flushAt
            this.flushK = 0
          }
          position = this.flushAt + this.flushK++ * POSITION_STEP
        }
        this.sink.line(line.stream, line.time, line.text, position)
      })
      this.events = events
      let counted = 0
      this.joiner = new ContainerLog.LineJoiner(options.maxLineBytes, (line, offset) => {
        events.push(line, offset, this.end, this.now)
        if (cut !== undefined && events.cut !== counted) {
          counted = events.cut
          cut()
        }
      })
    }
  }

  // Positions of events (multiline): one ended by a line ending at byte X comes out at
  // X - 1/2 (+ steps), one sent by a timeout or the end of the file at the place read to, Y (+
  // steps). A reader started again where an event began gives the same positions from then on:
  // it ends events at the same lines, and sends on timeouts at places it has not sent at yet.
  private sentAt = Number.NaN
  private sentK = 0
  private flushedAt = Number.NaN
  private flushK = 0
  /** While events are sent by a timeout or the end of the file: where. */
  private flushAt: number | undefined = undefined

  private flushEvents(at: number, flush: (events: Multiline.EventJoiner) => void): void {
    this.flushAt = at
    flush(this.events!)
    this.flushAt = undefined
  }

  /** Something is being gathered (a line's pieces, an event's lines): a timeout may send it. */
  get pending(): boolean {
    return this.joiner.pendingOffset !== undefined || this.events?.pendingOffset !== undefined
  }

  /**
   * `at` is a place (after a physical line) where no physical line is half read: the resume
   * point moves there, or to where the earliest event still being gathered began. While pieces of
   * a line are being joined it stays where it was (where they began).
   */
  private quiet(at: number): void {
    if (!this.joiner.idle) return
    const events = this.events
    const pending = events?.pendingOffset
    if (pending === undefined) {
      this.quietAt = at
      return
    }
    // Where the earliest event being gathered began, unless a line after it went out in another
    // event (of the other stream): from there the same bytes would be grouped otherwise.
    if (events!.sentEnd <= pending && pending > this.quietAt) this.quietAt = pending
  }

  /** Lines cut at the size limit so far. */
  get split(): number {
    return this.joiner.split
  }

  /** Where to start reading again so that no line not yet out is missed, and none comes out otherwise. */
  get resumeOffset(): number {
    return this.quietAt
  }

  /** A line (not in an event) ending at `this.end`. */
  private lineOut(stream: ContainerLog.StreamName, time: number, text: string): void {
    this.sink.line(stream, time, text, this.end + this.k++ * POSITION_STEP)
  }

  private at(end: number): void {
    if (end !== this.end) {
      this.end = end
      this.k = 0
    }
  }

  /** Takes the next `chunk` of the file (read at `this.offset`). */
  feed(chunk: Buffer, now: number): void {
    this.now = now
    const base = this.offset
    this.offset += chunk.length
    if (this.carry !== undefined && this.long === undefined) {
      const newline = chunk.indexOf(10)
      if (newline >= 0) {
        // The line begun in the chunk before ends in this one: only it is put together (not
        // the whole chunk copied behind it), then the rest is read in place.
        const line = Buffer.concat([this.carry, chunk.subarray(0, newline + 1)])
        const lineStart = this.carryStart
        this.carry = undefined
        this.scan(line, lineStart, 0)
        this.scan(chunk, base, newline + 1)
        return
      }
    }
    const data = this.carry === undefined ? chunk : Buffer.concat([this.carry, chunk])
    const dataStart = this.carry === undefined ? base : this.carryStart
    this.carry = undefined
    if (this.long === undefined) {
      this.scan(data, dataStart, 0)
      return
    }
    const newline = data.indexOf(10)
    this.longText(data, dataStart, 0, newline)
    if (newline < 0) return
    this.quiet(dataStart + newline + 1)
    this.scan(data, dataStart, newline + 1)
  }

  /** Decodes the physical lines of `data` (starting at file offset `dataStart`) from `from`. */
  private scan(data: Buffer, dataStart: number, from: number): void {
    const max = this.options.maxLineBytes
    let start = from
    if (this.skipping) {
      const newline = data.indexOf(10, start)
      if (newline < 0) return
      this.skipping = false
      start = newline + 1
      this.quiet(dataStart + start)
    }
    for (let newline = data.indexOf(10, start); newline >= 0; newline = data.indexOf(10, start)) {
      if (newline > start) {
        // A CRI line with more text than a line may have is cut as it would be read piece by
        // piece (below), so that it comes out the same however it was read.
        const header = newline - start > max ? criHeader(data, start) : undefined
        if (header !== undefined && newline - start - header.length > max) {
          this.long = { start: dataStart + start, stream: header.stream, time: header.time, partial: header.partial }
          this.longText(data, dataStart, start + header.length, newline)
        } else if (!this.criLine(data, dataStart, start, newline)) {
          const piece = ContainerLog.decodeLine(data.toString("utf8", start, newline))
          if (ContainerLog.isLineError(piece)) {
            this.sink.malformed(`${piece.reason}: ${JSON.stringify(piece.excerpt)}`)
          } else {
            this.at(dataStart + newline + 1)
            this.joiner.push(piece, dataStart + start, this.now)
          }
        }
      }
      start = newline + 1
      if (this.long === undefined) this.quiet(dataStart + start)
    }
    const rest = data.length - start
    if (rest === 0) return
    if (rest > max + HEADER_MAX) {
      // Longer than a line may be, and no newline yet: a CRI line is read on piece by piece.
      const header = criHeader(data, start)
      if (header !== undefined) {
        this.long = { start: dataStart + start, stream: header.stream, time: header.time, partial: header.partial }
        this.longText(data, dataStart, start + header.length, -1)
        return
      }
      if (rest > this.maxPhysicalBytes) {
        this.sink.malformed(`a line longer than ${this.maxPhysicalBytes} bytes that is not CRI was dropped`)
        this.skipping = true
        return
      }
    }
    this.carry = Buffer.from(data.subarray(start))
    this.carryStart = dataStart + start
  }

  /**
   * The CRI line `data[start, newline)`, read from its bytes: the usual line — whole, no longer
   * than a line may be, nothing being joined, no multiline rule — goes out as it is, with no
   * object made on the way (the others go to the joiner); false when it is not plainly CRI (then
   * it is decoded as text).
   */
  private criLine(data: Buffer, dataStart: number, start: number, newline: number): boolean {
    const header = this.header
    // A file's lines mostly have times of one length: a space where the last line's time ended, and
    // a time before it that the quick parse reads (which makes sure there is no space in it), and
    // that space is the first, found without looking at each byte before it (~30 of them: a third
    // of reading the header, ~4 % of the file tail's CPU).
    const guess = start + this.timeLength
    let time = guess < newline && data[guess] === 32 ? Rfc3339.quickTimestampBytes(data, start, guess, this.viewOf(data)) : Number.NaN
    if (!Number.isNaN(time)) {
      if (!ContainerLog.readCriRest(data, guess, newline, header)) return false
    } else {
      if (!ContainerLog.readCriHeader(data, start, newline, header)) return false
      time = Rfc3339.parseBytes(data, start, header.timeEnd)
      this.timeLength = header.timeEnd - start
    }
    // (No encoding named: UTF-8, decoded at once, without looking up an encoding by name.)
    const text = data.toString(undefined, header.textStart, newline)
    this.at(dataStart + newline + 1)
    const fits = newline - start <= this.options.maxLineBytes
    if (fits && !header.partial && this.events === undefined && this.joiner.idle) this.lineOut(header.stream, time, text)
    else this.joiner.push({ stream: header.stream, time, text, partial: header.partial }, dataStart + start, this.now)
    return true
  }

  private readonly header: ContainerLog.CriHeader = { timeEnd: 0, textStart: 0, stream: "stdout", partial: false }
  /** How long the last CRI line's time was (bytes up to its first space); 0 before one is read. */
  private timeLength = 0
  /** A DataView of the bytes read last (Rfc3339.quickTimestampBytes reads them a word at a time). */
  private view: DataView | undefined = undefined
  private viewed: Buffer | undefined = undefined

  private viewOf(data: Buffer): DataView {
    if (data !== this.viewed) {
      this.viewed = data
      this.view = new DataView(data.buffer, data.byteOffset, data.byteLength)
    }
    return this.view!
  }

  /**
   * Text of the long line in `data` from `from` to its newline at `newline` (-1: not read yet):
   * pieces of `maxLineBytes` go to the joiner as they fill (cut where they would be whatever the
   * chunks), so no more than about two of them are held; without the newline, the rest is kept
   * for the next chunk.
   */
  private longText(data: Buffer, dataStart: number, from: number, newline: number): void {
    const long = this.long!
    const max = this.options.maxLineBytes
    const stop = newline < 0 ? data.length : newline
    let at = from
    while (stop - at > max) {
      const cut = utf8Boundary(data.subarray(at, stop), max)
      this.at(dataStart + at + cut)
      this.joiner.push({ stream: long.stream, time: long.time, text: data.toString("utf8", at, at + cut), partial: true }, long.start, this.now)
      at += cut
    }
    if (newline < 0) {
      this.carry = Buffer.from(data.subarray(at, stop))
      this.carryStart = dataStart + at
      return
    }
    this.long = undefined
    this.at(dataStart + newline + 1)
    this.joiner.push({ stream: long.stream, time: long.time, text: data.toString("utf8", at, newline), partial: long.partial }, long.start, this.now)
  }

  /** Sends the lines whose last piece has not come since before `deadline` (KUBERNETES_PARTIAL_TIMEOUT). */
  flushOlderThan(deadline: number): void {
    this.at(this.offset)
    this.joiner.flushOlderThan(deadline)
    this.settled()
  }

  /**
   * Sends the events no line has joined since before `deadline` (KUBERNETES_MULTILINE_TIMEOUT),
   * at the position of this read.
   */
  flushEventsOlderThan(deadline: number): void {
    if (this.events?.pendingOffset === undefined) return
    this.flushEvents(this.offset, (events) => events.flushOlderThan(deadline))
    this.settled()
  }

  /**
   * A reader catching up with `head` (a drain's backlog, read again) sends, at `position`, the
   * events `head` has already sent: those of a stream where `head` gathers none, or one that began
   * later. (The head may have sent them on a timeout, which a reader catching up never waits for,
   * or at a line past the place it is read to.)
   */
  flushEventsSentBy(head: LineReader, position: number): void {
    const events = this.events
    if (events === undefined || events.pendingOffset === undefined) return
    const sent = (stream: ContainerLog.StreamName, offset: number) => {
      const theirs = head.events?.pendingOffsetOf(stream)
      return theirs === undefined || theirs > offset
    }
    let n = 0
    for (const stream of ["stdout", "stderr"] as const) {
      const offset = events.pendingOffsetOf(stream)
      if (offset !== undefined && sent(stream, offset)) n++
    }
    if (n === 0) return
    // Positions up to `position`, the last one at it.
    this.flushedAt = position - (n - 1) * POSITION_STEP
    this.flushK = 0
    this.flushEvents(this.flushedAt, (e) => e.flushUnless((stream, offset) => !sent(stream, offset)))
    this.flushedAt = Number.NaN
  }

  /** Lines or events were sent at `this.offset` (timeouts): reading again from here may lose nothing now. */
  private settled(): void {
    if (this.long !== undefined || this.skipping) return
    // Events still gathered after some were sent here: a reader started again where they began
    // would send them here too, at positions already used. Wait for the next line.
    if (this.events?.pendingOffset !== undefined && this.flushedAt === this.offset && this.flushK > 0) return
    this.quiet(this.carry === undefined ? this.offset : this.carryStart)
  }

  /**
   * The file ends here (it was rotated, or deleted): lines still being joined are sent as they
   * are; an unfinished physical line is dropped (runtimes write whole lines).
   */
  endOfFile(): void {
    if (this.long !== undefined) {
      this.at(this.offset)
      const long = this.long
      if (this.carry !== undefined && this.carry.length > 0) {
        this.joiner.push({ stream: long.stream, time: long.time, text: this.carry.toString("utf8"), partial: false }, long.start, this.now)
      }
      this.long = undefined
    } else if (this.carry !== undefined) {
      this.sink.malformed(`an unfinished line at the end of a rotated file was dropped`)
    }
    this.carry = undefined
    // (Only when it was: storing to a field only ever initialized makes V8 throw away the code
    // that took it for a constant — scan's, at the first rotation.)
    if (this.skipping) this.skipping = false
    this.at(this.offset)
    this.joiner.flushOlderThan(Number.POSITIVE_INFINITY)
    if (this.events !== undefined) this.flushEvents(this.offset, (events) => events.flushOlderThan(Number.POSITIVE_INFINITY))
    this.quietAt = this.offset
  }
}

/** The end of the longest prefix of `bytes` of at most `max` bytes that does not split a UTF-8 character. */
const utf8Boundary = (bytes: Buffer, max: number): number => {
  let end = max
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return end === 0 ? max : end
}

/** The header of a CRI line (`<time> <stream> <tag> `) at `start` of `data`, if it is one. */
const criHeader = (
  data: Buffer,
  start: number
): { readonly length: number; readonly stream: ContainerLog.StreamName; readonly time: number; readonly partial: boolean } | undefined => {
  if (data[start] === 123 /* { */) return undefined
  const head = data.toString("latin1", start, Math.min(data.length, start + HEADER_MAX))
  const first = head.indexOf(" ")
  if (first < 0 || head.charCodeAt(first + 7) !== 32) return undefined
  const stream = head.startsWith("stdout", first + 1) ? "stdout" : head.startsWith("stderr", first + 1) ? "stderr" : undefined
  if (stream === undefined) return undefined
  const third = head.indexOf(" ", first + 8)
  if (third < 0 || third === first + 8) return undefined
  return { length: third + 1, stream, time: Rfc3339.parse(head, 0, first), partial: head.charCodeAt(first + 8) === 80 /* P */ }
}
