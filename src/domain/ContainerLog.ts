/**
 * Container log files as the kubelet leaves them: their names, the two line formats, and the
 * joining of lines the runtime wrote in pieces.
 *
 * - Names: `/var/log/containers/<pod>_<namespace>_<container>-<64 hex id>.log`.
 * - Docker json-file: `{"log":"text\n","stream":"stdout","time":"2024-01-01T00:00:00.123456789Z"}`;
 *   a `log` without the trailing newline is a piece of a longer line (Docker cuts at 16 KiB).
 * - CRI (containerd, CRI-O): `2024-01-01T00:00:00.123456789Z stdout F text`; `P` marks a piece,
 *   `F` the last (or only) one.
 *
 * Pieces are joined per stream (stdout and stderr interleave). A joined line has a maximum size:
 * beyond it the line is cut into several, so a runaway writer cannot make logtrain hold an
 * unbounded line.
 */
import * as Rfc3339 from "./Rfc3339.ts"

export interface ContainerFile {
  readonly pod: string
  readonly namespace: string
  readonly container: string
  readonly containerId: string
}

const FILE_NAME =
  /^([a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*)_([^_]+)_(.+)-([a-f0-9]{64})\.log$/

/** Pod, namespace and container of a log file's name, or undefined for a name of another shape. */
export const parseFileName = (name: string): ContainerFile | undefined => {
  const match = FILE_NAME.exec(name)
  return match === null ? undefined : { pod: match[1]!, namespace: match[2]!, container: match[3]!, containerId: match[4]! }
}

export type StreamName = "stdout" | "stderr"

/** One line of a log file, decoded. */
export interface Piece {
  readonly stream: StreamName
  /** Milliseconds since the epoch; NaN when the line's time could not be read. */
  readonly time: number
  readonly text: string
  /** A piece of a longer line: more follows on the same stream. */
  readonly partial: boolean
}

export interface LineError {
  readonly reason: "InvalidJson" | "InvalidCri"
  readonly excerpt: string
}

export const isLineError = (u: Piece | LineError): u is LineError => "reason" in u

const lineError = (reason: LineError["reason"], line: string): LineError => ({ reason, excerpt: line.slice(0, 80) })

/** Decodes one line of either format (told apart by its first character). */
export const decodeLine = (line: string): Piece | LineError =>
  line.charCodeAt(0) === 123 /* { */ ? decodeDocker(line) : decodeCri(line)

/** Milliseconds of an RFC 3339 time as runtimes write it (`2024-01-01T00:00:00.123456789Z`); NaN when invalid. */
export const parseTime = (text: string): number => Rfc3339.parse(text)

const LOG_START = '{"log":"'
const STREAM = '","stream":"'
const TIME = '","time":"'

/**
 * The common Docker line — `{"log":"…","stream":"…","time":"…"}` with no escape in the text but
 * its final `\n` — without a JSON parse; anything else (escapes, extra attributes) is parsed.
 */
const decodeDockerFast = (line: string): Piece | undefined => {
  if (!line.startsWith(LOG_START) || !line.endsWith('"}')) return undefined
  const streamAt = line.indexOf(STREAM, LOG_START.length)
  if (streamAt < 0) return undefined
  const backslash = line.indexOf("\\", LOG_START.length)
  const complete = backslash === streamAt - 2 && line.charCodeAt(streamAt - 1) === 110 /* n */
  if (backslash >= 0 && backslash < streamAt && !complete) return undefined
  const streamEnd = line.indexOf('"', streamAt + STREAM.length)
  if (streamEnd < 0 || !line.startsWith(TIME, streamEnd) || line.indexOf("\\", streamEnd) >= 0) return undefined
  const stream = line.slice(streamAt + STREAM.length, streamEnd)
  return {
    stream: stream === "stderr" ? "stderr" : "stdout",
    time: parseTime(line.slice(streamEnd + TIME.length, line.length - 2)),
    text: line.slice(LOG_START.length, complete ? streamAt - 2 : streamAt),
    partial: !complete
  }
}

const decodeDocker = (line: string): Piece | LineError => {
  const fast = decodeDockerFast(line)
  if (fast !== undefined) return fast
  let json: { log?: unknown; stream?: unknown; time?: unknown }
  try {
    json = JSON.parse(line)
  } catch {
    return lineError("InvalidJson", line)
  }
  if (typeof json !== "object" || json === null || typeof json.log !== "string") return lineError("InvalidJson", line)
  const log = json.log
  const complete = log.endsWith("\n")
  return {
    stream: json.stream === "stderr" ? "stderr" : "stdout",
    time: typeof json.time === "string" ? parseTime(json.time) : Number.NaN,
    text: complete ? log.slice(0, log.endsWith("\r\n") ? -2 : -1) : log,
    partial: !complete
  }
}

/** Read in place (no slices but the text): this runs for every line of every container. */
const decodeCri = (line: string): Piece | LineError => {
  const first = line.indexOf(" ")
  const second = first < 0 ? -1 : line.indexOf(" ", first + 1)
  if (second !== first + 7) return lineError("InvalidCri", line)
  const stream = line.startsWith("stdout", first + 1) ? "stdout" : line.startsWith("stderr", first + 1) ? "stderr" : undefined
  if (stream === undefined) return lineError("InvalidCri", line)
  // The tag: `P` or `F`, possibly followed by more `:`-separated tags in later versions.
  const third = line.indexOf(" ", second + 1)
  if (third === second + 1 || second + 1 === line.length) return lineError("InvalidCri", line)
  return {
    stream,
    time: Rfc3339.parse(line, 0, first),
    text: third < 0 ? "" : line.slice(third + 1),
    partial: line.charCodeAt(second + 1) === 80 /* P */
  }
}

/**
 * Where the parts of a CRI line are, read from its bytes by `readCriHeader`: an object a reader
 * keeps and has filled for each line, so that reading the header allocates nothing.
 */
export interface CriHeader {
  /** The end of the time (the first space). */
  timeEnd: number
  /** Where the text starts; the line's end when it has none. */
  textStart: number
  stream: StreamName
  partial: boolean
}

/**
 * Reads the header of the CRI line `data[start, end)` (no newline) in place into `header`; false
 * when it is not plainly CRI (a Docker line, a broken one): then `decodeLine` on the decoded line
 * decides, and says why. Where it is true, `decodeCriBytes` gives what `decodeLine` gives for the
 * same line: the header it accepts is ASCII, and the text starts after a space, where decoding
 * the whole line or only the rest agree. This runs for every line of every container.
 */
export const readCriHeader = (data: Buffer, start: number, end: number, header: CriHeader): boolean => {
  if (data[start] === 123 /* { */) return false
  const limit = Math.min(end, start + CRI_TIME_MAX)
  let first = start
  while (first < limit && data[first] !== 32) first++
  return first < limit && readCriRest(data, first, end, header)
}

/**
 * `readCriHeader` past the time, which ends at `first`, the line's first space (no further than
 * CRI_TIME_MAX from its start): for a reader that found it otherwise (LineReader: where the last
 * line's time ended, before a time read whole).
 */
export const readCriRest = (data: Buffer, first: number, end: number, header: CriHeader): boolean => {
  // `<time> stdout <tag>`: the second space right after the stream, a tag after it.
  const tag = first + 8
  if (tag >= end || data[tag - 1] !== 32 || data[tag] === 32) return false
  const stream = streamAt(data, first + 1)
  if (stream === undefined) return false
  let third = tag + 1
  while (third < end && data[third] !== 32) third++
  header.timeEnd = first
  header.textStart = third < end ? third + 1 : end
  header.stream = stream
  header.partial = data[tag] === 80 /* P */
  return true
}

/** A CRI line decoded from its bytes (see `readCriHeader`), or undefined when it is not plainly one. */
export const decodeCriBytes = (data: Buffer, start: number, end: number): Piece | undefined => {
  const header: CriHeader = { timeEnd: 0, textStart: 0, stream: "stdout", partial: false }
  if (!readCriHeader(data, start, end, header)) return undefined
  return {
    stream: header.stream,
    time: Rfc3339.parseBytes(data, start, header.timeEnd),
    text: data.toString("utf8", header.textStart, end),
    partial: header.partial
  }
}

/** Longest time read in place (runtimes write 30 bytes); a longer one is read as text. */
const CRI_TIME_MAX = 64

/** `stdout` or `stderr` at `at` of `data`. */
const streamAt = (data: Buffer, at: number): StreamName | undefined => {
  if (data[at] !== 115 || data[at + 1] !== 116 || data[at + 2] !== 100) return undefined
  const a = data[at + 3], b = data[at + 4], c = data[at + 5]
  if (a === 111 && b === 117 && c === 116) return "stdout"
  if (a === 101 && b === 114 && c === 114) return "stderr"
  return undefined
}

/** A line ready to become a packet. */
export interface Line {
  readonly stream: StreamName
  readonly time: number
  readonly text: string
}

interface Pending {
  readonly pieces: Array<string>
  bytes: number
  time: number
  /** When the first piece was read (for the timeout) and where it started in the file. */
  readonly since: number
  readonly offset: number
}

/** The largest prefix of `text` whose UTF-8 encoding fits in `maxBytes`, cut between characters. */
export const cutUtf8 = (text: string, maxBytes: number): [head: string, rest: string] => {
  if (text.length * 3 <= maxBytes) return [text, ""]
  const bytes = Buffer.from(text, "utf8")
  if (bytes.length <= maxBytes) return [text, ""]
  let end = maxBytes
  // Back over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  const head = bytes.toString("utf8", 0, end)
  return [head, text.slice(head.length)]
}

const byteLength = (text: string): number => Buffer.byteLength(text, "utf8")

/**
 * Joins pieces into lines, per stream. Lines come out through `emit`, in the order they complete.
 * `split` counts lines cut at the size limit; `timedOut` lines flushed incomplete.
 */
export class LineJoiner {
  private readonly pending = new Map<StreamName, Pending>()
  split = 0
  timedOut = 0

  private readonly maxBytes: number
  /** Takes each line and where in the file its first piece started. */
  private readonly emit: (line: Line, offset: number) => void

  constructor(maxBytes: number, emit: (line: Line, offset: number) => void) {
    this.maxBytes = maxBytes
    this.emit = emit
  }

  /** Takes a decoded piece that started at byte `offset` of the file. */
  push(piece: Piece, offset: number, now: number): void {
    const open = this.pending.get(piece.stream)
    if (open === undefined && !piece.partial) {
      this.emitCut(piece, offset)
      return
    }
    const group = open ?? { pieces: [], bytes: 0, time: piece.time, since: now, offset }
    if (open === undefined) this.pending.set(piece.stream, group)
    group.pieces.push(piece.text)
    group.bytes += byteLength(piece.text)
    if (!piece.partial) {
      this.pending.delete(piece.stream)
      this.emitCut({ stream: piece.stream, time: group.time, text: group.pieces.join("") }, group.offset)
    } else if (group.bytes > this.maxBytes) {
      // Too long already: send what fits, keep the rest as the start of the next line.
      const [head, rest] = cutUtf8(group.pieces.join(""), this.maxBytes)
      this.split++
      this.emit({ stream: piece.stream, time: group.time, text: head }, group.offset)
      group.pieces.length = 0
      group.pieces.push(rest)
      group.bytes = byteLength(rest)
    }
  }

  /** Emits `line`: itself when it fits (the usual case), else cut into lines that do. */
  private emitCut(line: Line, offset: number): void {
    if (!this.tooLong(line.text)) {
      this.emit(line, offset)
      return
    }
    const { stream, time } = line
    let rest = line.text
    do {
      const [head, tail] = cutUtf8(rest, this.maxBytes)
      this.split++
      this.emit({ stream, time, text: head }, offset)
      rest = tail
    } while (this.tooLong(rest))
    this.emit({ stream, time, text: rest }, offset)
  }

  private tooLong(text: string): boolean {
    return text.length > this.maxBytes / 3 && byteLength(text) > this.maxBytes
  }

  /** Sends the lines that have waited for their last piece since before `deadline`. */
  flushOlderThan(deadline: number): void {
    // (Called after every look at a file: most find nothing being joined, and make no iterator.)
    if (this.pending.size === 0) return
    for (const [stream, group] of this.pending) {
      if (group.since > deadline) continue
      this.pending.delete(stream)
      this.timedOut++
      this.emitCut({ stream, time: group.time, text: group.pieces.join("") }, group.offset)
    }
  }

  /** No line is being joined: a whole line that fits may go out as it is. */
  get idle(): boolean {
    return this.pending.size === 0
  }

  /** Where the earliest incomplete line started in the file; undefined when none is pending. */
  get pendingOffset(): number | undefined {
    let earliest: number | undefined
    for (const group of this.pending.values()) {
      if (earliest === undefined || group.offset < earliest) earliest = group.offset
    }
    return earliest
  }

  /** Forgets incomplete lines (their file was truncated or replaced). */
  clear(): void {
    this.pending.clear()
  }
}
