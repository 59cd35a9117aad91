/**
 * One followed container log file (a path in /var/log/containers): its generations, the reader
 * at their head, the drains behind it, and what its checkpoint may say. The file is the buffer:
 * nothing read is forgotten until every drain it was routed to is done with it.
 *
 * - Generations: the file the path names now (live), and the ones before it that something still
 *   needs — renamed away, or the copy a copytruncate left. Each has a sequence number; a place in
 *   the file is a generation and a position in it (LineReader: the byte after a line).
 * - The head reads each generation to its end, oldest first, then the live one as it grows, and
 *   hands its lines over as packets in chunks; each chunk is the packets' Receipt. Every step is
 *   synchronous (files.ts): no interleavings within a follower.
 * - Drains behind: a drain that was full when offered one of these packets is parked here at that
 *   packet (Receipt.park) and skipped by the head from then on; `feedBacklog` reads the file
 *   again from there for it alone, as fast as it takes packets, until it has caught up with the
 *   head, and the head's packets go to it again. It may hold generations the head has left: their
 *   descriptors stay open until it has read them, or until it is more than `maxBacklogBytes`
 *   behind — then its oldest lines are skipped, counted for that drain (`backlog_limit`).
 * - Checkpoint: the earliest place some drain still needs — the oldest chunk not settled, of the
 *   head or of a drain behind, or where a drain was parked — and, per drain behind, its own place,
 *   so that a restart neither loses nor repeats what a drain already had.
 * - Rotation by rename: the path names another file; the old one is read to its end (once the new
 *   one has data: the runtime writes to the old one until it reopens), then the new one. By
 *   copytruncate: the live file shrank, or its first bytes changed; its generation continues in
 *   the copy (a sibling with the same first bytes), and the live file becomes a new generation.
 */
import * as Fs from "node:fs"
import * as ContainerLog from "../../../domain/ContainerLog.ts"
import { LineReader, POSITION_STEP, type PositionedLine } from "../../../domain/LineReader.ts"
import * as LogPacket from "../../../domain/LogPacket.ts"
import type * as Multiline from "../../../domain/Multiline.ts"
import * as Rfc3339 from "../../../domain/Rfc3339.ts"
import type { Feed, Receipt } from "../../../domain/Receipt.ts"
import type * as Checkpoints from "../../storage/Checkpoints.ts"
import * as Files from "./files.ts"

export interface FollowerOptions {
  readonly maxLineBytes: number
  /** A line whose last piece has not come after this long (ms) is sent as it is. */
  readonly partialTimeout: number
  /** How long (ms) a file renamed away is read while its successor stays empty. */
  readonly rotateWait: number
  /** How long (ms) a deleted file is read before it is released. */
  readonly goneGrace: number
  /** How far (bytes) a drain may fall behind the head before its oldest lines are skipped. */
  readonly maxBacklogBytes: number
  /** An event no line has joined for this long (ms) is sent as it is (KUBERNETES_MULTILINE_TIMEOUT). */
  readonly multilineTimeout: number
  /** Longest event (bytes): the line that would make it longer begins the next one (KUBERNETES_MULTILINE_MAX_SIZE). */
  readonly multilineMaxBytes: number
}

/** What the followers of the input count; the input's metrics read these. */
export interface FollowerCounts {
  records: number
  bytes: number
  malformed: number
  lastMalformed: { readonly message: string } | undefined
  renames: number
  truncations: number
  unrecovered: number
  /** Lines cut at the size limit by followers no longer followed (the live ones count their own). */
  splitOfReleased: number
  /** Lines skipped for drains too far behind. */
  backlogDropped: number
  /** Multiline events cut at the maximum size (by the heads). */
  multilineCut: number
  /** Some follower's place changed since the last checkpoint was saved. */
  unsaved: boolean
}

/** Bytes read at once. */
export const CHUNK = 64 * 1024

/** One read buffer for everything: reads are synchronous and decoding copies what it keeps. */
const buffer = Buffer.allocUnsafeSlow(CHUNK)

export class Generation {
  /** Open while something may read it; undefined once closed, or when it could not be found. */
  fd: number | undefined
  identity: Files.Identity
  print: Files.Fingerprint
  /** The file's size once nothing writes it any more (renamed away, copied); undefined while live. */
  size: number | undefined = undefined
  mtimeMs: number
  /** Its place among the generations (a live file found to have had copies before it moves after them). */
  seq: number
  constructor(seq: number, fd: number | undefined, identity: Files.Identity, print: Files.Fingerprint, mtimeMs: number) {
    this.seq = seq
    this.fd = fd
    this.identity = identity
    this.print = print
    this.mtimeMs = mtimeMs
  }
  close(): void {
    if (this.fd !== undefined) Files.closeQuietly(this.fd)
    this.fd = undefined
  }
}

/** A place to start reading from: generation, byte (no line pending there), and the first position wanted. */
export interface Mark {
  readonly gen: Generation
  readonly offset: number
  readonly from: number
}

/** Whether `a` comes before `b`. */
const earlier = (a: { readonly gen: Generation; readonly from: number }, b: { readonly gen: Generation; readonly from: number }) =>
  a.gen.seq < b.gen.seq || (a.gen.seq === b.gen.seq && a.from < b.from)

/** Who reads a generation: the head, or a drain behind. Chunks settle to their reader. */
interface ChunkOwner {
  readonly chunks: Array<Chunk>
}

/** Packets handed over together, from one generation: their receipt. */
class Chunk implements Receipt {
  /** Packets not routed yet (the head's; 0 for a drain's backlog, which goes to it directly). */
  unrouted: number
  /** Packets not routed yet, plus offers not settled yet. */
  outstanding: number
  /** Offers not settled yet, by drain (a few pairs: a packet goes to a few drains). */
  readonly owed: Array<[endpoint: string, offers: number]> = []
  /** Offers made (settled or not). */
  offers = 0
  readonly follower: FileFollower
  readonly owner: ChunkOwner
  /** Where reading starts to give these packets again, and the first one's position. */
  readonly mark: Mark
  readonly last: number
  constructor(follower: FileFollower, owner: ChunkOwner, mark: Mark, last: number, routed: number) {
    this.follower = follower
    this.owner = owner
    this.mark = mark
    this.last = last
    this.unrouted = routed
    this.outstanding = routed
  }
  wants(endpoint: string, packet: LogPacket.LogPacket): boolean {
    return this.follower.wants(endpoint, this, packet.position!)
  }
  offered(endpoint: string): void {
    this.outstanding++
    this.offers++
    for (const pair of this.owed) {
      if (pair[0] === endpoint) {
        pair[1]++
        return
      }
    }
    this.owed.push([endpoint, 1])
  }
  routed(endpoints: ReadonlyArray<string> | undefined): void {
    this.follower.changed()
    this.unrouted--
    if (this.owner === this.follower) this.follower.routes = endpoints
    if (this.unrouted === 0) this.follower.routedUpTo(this)
    if (--this.outstanding === 0) this.follower.settled(this.owner)
  }
  settle(endpoint: string): void {
    this.follower.changed()
    for (let i = 0; i < this.owed.length; i++) {
      const pair = this.owed[i]!
      if (pair[0] !== endpoint) continue
      if (--pair[1] === 0) this.owed.splice(i, 1)
      if (--this.outstanding === 0) this.follower.settled(this.owner)
      return
    }
  }
  /** What `endpoint` owes is forgiven (its route is gone); returns whether it owed anything. */
  forgive(endpoint: string): boolean {
    const at = this.owed.findIndex((pair) => pair[0] === endpoint)
    if (at < 0) return false
    this.outstanding -= this.owed[at]![1]
    this.owed.splice(at, 1)
    return true
  }
  park(endpoint: string, packet: LogPacket.LogPacket, feed: Feed): void {
    this.follower.park(endpoint, this, packet.position!, feed)
  }
}

/** A drain that was full: it reads this file's backlog by itself until it has caught up. */
export class Behind implements ChunkOwner {
  readonly endpoint: string
  feed: Feed
  /** Where its backlog starts. */
  mark: Mark
  /** Its reader while it reads the backlog; undefined while it waits for room. */
  reader: LineReader | undefined = undefined
  readonly out: Array<PositionedLine> = []
  readonly chunks: Array<Chunk> = []
  /** Once caught up: the head's packets after this go to it again. */
  rejoinAt: { readonly gen: Generation; readonly from: number } | undefined = undefined
  constructor(endpoint: string, feed: Feed, mark: Mark) {
    this.endpoint = endpoint
    this.feed = feed
    this.mark = mark
  }
}

/** What `feedBacklog` came to. */
export type BacklogStep = "more" | "full" | "caughtUp" | "gone"

/** What `look` came to: more to read now, nothing new, or the file is done with (deleted, read, nothing behind). */
export type LookResult = "more" | "idle" | "done"

export class FileFollower implements ChunkOwner {
  readonly path: string
  readonly file: ContainerLog.ContainerFile
  readonly hostname: string
  readonly tag: string
  /** Lines joined into events by this rule (the pod's multiline annotation), if any. */
  readonly multiline: Multiline.Rule | undefined
  /** Generations still needed, oldest first; the last is live unless the file was deleted. */
  readonly gens: Array<Generation>
  /** The head: the generation it reads, its reader, and the last position it handed over there. */
  gen: Generation
  reader: LineReader
  lastPos = Number.NEGATIVE_INFINITY
  readonly chunks: Array<Chunk> = []
  readonly behind = new Map<string, Behind>()
  /** After a restart: where each drain (by endpoint hash) resumes, and where the others do. */
  restart: { readonly marks: ReadonlyMap<string, Mark>; readonly others: Mark } | undefined
  /** Where the head's routed packets have reached (drains that caught up are sure of the rest). */
  private routed: { gen: Generation; from: number } | undefined = undefined
  private readonly out: Array<PositionedLine> = []
  private goneSince: number | undefined = undefined
  private renamedSince: number | undefined = undefined
  /** The live file's modification time when last found with nothing new. */
  private quietMtime = Number.NaN
  /** Deleted and read to its end: no live generation any more. */
  ended = false
  /** The drains the head's last packet was routed to (the route table's list). */
  routes: ReadonlyArray<string> | undefined = undefined
  /** Called when the head may go on (a drain caught up): the poller looks at it at once. */
  onResume: () => void = () => {}

  /**
   * Every drain this file is routed to is behind: the head waits for one of them to catch up,
   * rather than read on for nobody (their backlogs would only grow).
   */
  get paused(): boolean {
    const routes = this.routes
    if (routes === undefined || routes.length === 0 || this.behind.size === 0) return false
    for (const endpoint of routes) if (this.behind.get(endpoint)?.rejoinAt !== undefined || !this.behind.has(endpoint)) return false
    return true
  }
  /** Drains behind that have room again or were just parked: the input feeds them. */
  readonly onParked: (behind: Behind) => void
  private readonly options: FollowerOptions
  private readonly counts: FollowerCounts
  /** How a drain is named in checkpoints. */
  private readonly endpointKey: (endpoint: string) => string
  private nextSeq: number

  constructor(init: {
    readonly path: string
    readonly file: ContainerLog.ContainerFile
    readonly hostname: string
    readonly tag: string
    readonly multiline?: Multiline.Rule | undefined
    readonly gens: Array<Generation>
    readonly start: Mark
    readonly restart?: FileFollower["restart"]
    readonly options: FollowerOptions
    readonly counts: FollowerCounts
    readonly onParked: (behind: Behind) => void
    readonly endpointKey: (endpoint: string) => string
  }) {
    this.endpointKey = init.endpointKey
    this.path = init.path
    this.file = init.file
    this.hostname = init.hostname
    this.tag = init.tag
    this.multiline = init.multiline
    this.gens = init.gens
    this.options = init.options
    this.counts = init.counts
    this.onParked = init.onParked
    this.restart = init.restart
    this.nextSeq = (init.gens.at(-1)?.seq ?? -1) + 1
    this.gen = init.start.gen
    this.reader = this.readerAt(init.start.offset, this.out)
    this.lastPos = init.start.from - POSITION_STEP / 2
  }

  private readerAt(offset: number, out: Array<PositionedLine>): LineReader {
    const rule = this.multiline
    // Events cut are counted by the head's readers only (a drain's backlog cuts them again).
    const multiline = rule === undefined ? undefined : {
      rule,
      maxBytes: this.options.multilineMaxBytes,
      cut: out === this.out ? () => this.counts.multilineCut++ : undefined
    }
    return new LineReader(offset, { maxLineBytes: this.options.maxLineBytes, multiline }, {
      line: (line) => out.push(line),
      malformed: (message) => {
        this.counts.malformed++
        this.counts.lastMalformed = { message: `${message} in ${this.path}` }
      }
    })
  }

  /** Deleted, or renamed away, and waiting to be sure: to be looked at often, path included. */
  get unsettled(): boolean {
    return this.goneSince !== undefined || this.renamedSince !== undefined
  }

  get live(): Generation | undefined {
    return this.ended ? undefined : this.gens.at(-1)
  }

  /** Lines cut at the size limit by the head (a drain's backlog cuts them again: not counted twice). */
  get split(): number {
    return this.reader.split
  }

  // --- the head ---------------------------------------------------------------------------------

  /**
   * Reads what is new, up to `budget` bytes, adding its packets to `packets`, and sees to
   * rotation, truncation and deletion. `checkPath` also looks at what the path names now (a stat:
   * done when the file is quiet, or was said to change).
   */
  look(now: number, budget: number, packets: Array<LogPacket.LogPacket>, checkPath: boolean): LookResult {
    if (this.paused) return "idle"
    const before = this.gens.length
    let read = 0
    let resume = this.reader.resumeOffset
    const handOver = () => {
      if (this.out.length > 0) this.emit(this.out, { gen: this.gen, offset: resume, from: this.out[0]!.position }, this, packets, now)
    }
    while (read < budget) {
      const live = this.live
      if (this.gen !== live) {
        // A generation nothing writes any more: read it to its end, then the next.
        const gen = this.gen
        const n = gen.fd === undefined ? 0 : this.readInto(gen, Math.min(CHUNK, gen.size! - this.reader.offset), now, false)
        read += Math.max(n, 0)
        if (gen.fd !== undefined && this.reader.offset < gen.size! && n > 0) continue
        if (gen.fd === undefined && this.reader.offset < gen.size!) this.counts.unrecovered++
        this.reader.endOfFile()
        handOver()
        const next = this.gens[this.gens.indexOf(gen) + 1]
        if (next === undefined) return this.finish()
        this.gen = next
        this.reader = this.readerAt(0, this.out)
        this.lastPos = Number.NEGATIVE_INFINITY
        resume = 0
        this.release()
        continue
      }
      const stat = Fs.fstatSync(live.fd!)
      if (stat.size < this.reader.offset) {
        handOver()
        this.truncated(stat, now)
        resume = this.reader.resumeOffset
        continue
      }
      if (stat.size > this.reader.offset) {
        if (live.print.fingerprintBytes === 0 && this.reader.offset === 0 && this.unseenBefore(live)) continue
        const n = this.readInto(live, Math.min(CHUNK, stat.size - this.reader.offset), now, true)
        if (n < 0) {
          handOver()
          this.truncated(Fs.fstatSync(live.fd!), now)
          resume = this.reader.resumeOffset
          continue
        }
        read += n
        if (n === CHUNK) continue
        break
      }
      // Nothing new. Written without growing (a truncation refilled to the same length)? Or, still
      // empty as when it began, written and truncated since (copies of it will tell)?
      if (stat.mtimeMs !== this.quietMtime) {
        this.quietMtime = stat.mtimeMs
        if (!Files.matches(live.fd!, live.print)) {
          handOver()
          this.truncated(stat, now)
          resume = this.reader.resumeOffset
          continue
        }
        if (live.print.fingerprintBytes === 0 && this.reader.offset === 0 && this.unseenBefore(live)) continue
        checkPath = true
      }
      if (!checkPath) break
      const current = Files.statPath(this.path)
      if (current === undefined) {
        this.goneSince ??= now
        if (now - this.goneSince < this.options.goneGrace) break
        live.size = this.reader.offset
        this.ended = true
        continue
      }
      this.goneSince = undefined
      if (!Files.sameIdentity(current, live.identity)) {
        this.renamedSince ??= now
        // The runtime writes to the old file until it reopens: wait for the new one to have data.
        if (current.size === 0 && now - this.renamedSince < this.options.rotateWait) break
        handOver()
        this.renamed(now)
        resume = this.reader.resumeOffset
        continue
      }
      break
    }
    this.reader.flushOlderThan(now - this.options.partialTimeout)
    this.reader.flushEventsOlderThan(now - this.options.multilineTimeout)
    handOver()
    if (read > 0 || this.gens.length !== before) this.changed()
    return read >= budget ? "more" : "idle"
  }

  /** Its checkpoint may say something else now. */
  changed(): void {
    this.counts.unsaved = true
  }

  /** Reads `n` bytes of `gen` at the head's offset into its reader; -1 if the live file was truncated meanwhile. */
  private readInto(gen: Generation, n: number, now: number, live: boolean): number {
    if (n <= 0) return 0
    const at = this.reader.offset
    const bytesRead = Fs.readSync(gen.fd!, buffer, 0, n, at)
    // Truncated just before or during the read: those bytes are not the file's; read on from the copy.
    if (live && !Files.matches(gen.fd!, gen.print)) return -1
    // A print taken while the file was short grows with what was read (not read again: a
    // truncation meanwhile would make it another generation's, and the copy of this one be lost).
    if (live && gen.print.fingerprintBytes < Files.FINGERPRINT_BYTES) {
      gen.print = Files.extendedBy(gen.fd!, gen.print, at, buffer.subarray(0, bytesRead)) ?? gen.print
    }
    this.counts.bytes += bytesRead
    this.reader.feed(buffer.subarray(0, bytesRead), now)
    return bytesRead
  }

  /** Lines as packets with one receipt, added to `packets`. */
  private emit(lines: Array<PositionedLine>, mark: Mark, owner: ChunkOwner, packets: Array<LogPacket.LogPacket>, now: number): Chunk {
    const chunk = new Chunk(this, owner, mark, lines.at(-1)!.position, owner === this ? lines.length : 0)
    owner.chunks.push(chunk)
    for (const line of lines) packets.push(this.packet(line, now, chunk))
    if (owner === this) {
      this.lastPos = chunk.last
      this.counts.records += lines.length
    }
    lines.length = 0
    return chunk
  }

  /** Deleted and read to the end: done, unless drains behind still need it. */
  private finish(): LookResult {
    this.release()
    return this.behind.size === 0 ? "done" : "idle"
  }

  /** The path names another file: the live one was renamed away. */
  private renamed(now: number): void {
    const old = this.live!
    const fd = Files.openRead(this.path)
    if (fd === undefined) return
    const stat = Fs.fstatSync(fd)
    const last = Fs.fstatSync(old.fd!)
    old.size = last.size
    old.mtimeMs = last.mtimeMs
    // Rotated more than once since the last look: the files in between too (written after the
    // old one's last write).
    const between = Files.rotatedSince(this.path, last.mtimeMs, [stat, ...this.known()])
    for (const file of between) this.adopt(file.path, file.stat)
    this.gens.push(new Generation(this.nextSeq++, fd, stat, Files.fingerprintOf(fd, stat.size), stat.mtimeMs))
    this.counts.renames += 1 + between.length
    this.renamedSince = undefined
    this.quietMtime = Number.NaN
    void now
  }

  /** A rotated file found next to the live one: a generation of its own, read whole. */
  private adopt(path: string, stat: Fs.Stats): void {
    const fd = Files.openRead(path)
    if (fd === undefined) return
    const gen = new Generation(this.nextSeq++, fd, stat, Files.fingerprintOf(fd, stat.size), stat.mtimeMs)
    gen.size = stat.size
    this.gens.push(gen)
  }

  /**
   * The live file was truncated (copytruncate): its generation goes on in the copy — a file next
   * to it that begins with the same bytes and holds at least what was read — and the live file is
   * a new generation. Copies made in between (truncated twice between two looks) are read whole.
   */
  private truncated(stat: Fs.Stats, now: number): void {
    const gen = this.live!
    const readUpTo = this.gen === gen ? this.reader.offset : 0
    const known = this.known()
    const copy = Files.findByFingerprint(this.path, gen.print, readUpTo, { exclude: known })
    const liveFd = gen.fd!
    this.counts.truncations++
    if (copy === undefined) {
      this.counts.unrecovered++
      gen.fd = undefined
      gen.size = readUpTo
    } else {
      gen.fd = copy.fd
      gen.identity = copy.stat
      gen.size = copy.stat.size
      gen.mtimeMs = copy.stat.mtimeMs
    }
    const livePrint = Files.fingerprintOf(liveFd, stat.size)
    if (copy !== undefined) {
      const unseen = Files.rotatedSince(this.path, copy.stat.mtimeMs, [stat, copy.stat, ...known])
        .filter((file) => livePrint.prefix.length === 0 || !Files.agree(Files.headOf(file.path, Files.FINGERPRINT_BYTES), livePrint.prefix))
      for (const file of unseen) {
        this.adopt(file.path, file.stat)
        this.counts.truncations++
      }
    }
    this.gens.push(new Generation(this.nextSeq++, liveFd, stat, livePrint, stat.mtimeMs))
    this.quietMtime = Number.NaN
    void now
  }

  /** Generations read and forgotten (the last few), so that a rotated file is never read twice. */
  private readonly consumed: Array<Files.Identity> = []

  /** Files that are, or were, generations of this one. */
  private known(): Array<Files.Identity> {
    return [...this.gens.map((gen) => gen.identity), ...this.consumed]
  }

  /**
   * The live file was empty when it became a generation, and nothing of it was read: without first
   * bytes to tell, a truncation since then cannot be seen in it. Copies made since it began that
   * do not begin as it does now are generations that came and went before this look: they go
   * before it, read whole. Returns whether there were any.
   */
  private unseenBefore(live: Generation): boolean {
    const head = Files.headOf(this.path, Files.FINGERPRINT_BYTES)
    const unseen = Files.rotatedSince(this.path, live.mtimeMs, this.known())
      .filter((file) => head.length === 0 || !Files.agree(Files.headOf(file.path, Files.FINGERPRINT_BYTES), head))
    if (unseen.length === 0) return false
    this.gens.pop()
    const at = this.gens.length
    for (const file of unseen) {
      this.adopt(file.path, file.stat)
      this.counts.truncations++
    }
    const adopted = this.gens.length > at
    this.gens.push(live)
    if (!adopted) return false
    live.seq = this.nextSeq++
    this.gen = this.gens[at]!
    this.reader = this.readerAt(0, this.out)
    this.lastPos = Number.NEGATIVE_INFINITY
    return true
  }

  /** Closes and forgets generations no reader is in and no mark needs. */
  release(): void {
    const oldest = this.oldestNeeded()
    while (this.gens.length > 1 && this.gens[0] !== oldest && this.gens[0]!.seq < oldest.seq) {
      const gen = this.gens.shift()!
      gen.close()
      this.consumed.push(gen.identity)
      if (this.consumed.length > 32) this.consumed.shift()
    }
    for (const gen of this.gens) {
      if (gen === this.live || gen.fd === undefined || gen.seq > this.gen.seq) continue
      // Still read by the head, or by a drain behind (now or when it gets there), or a drain may
      // yet be parked in it (a packet of it not routed yet).
      const needed = (gen === this.gen && !this.ended) ||
        [...this.behind.values()].some((b) => b.mark.gen.seq <= gen.seq && b.rejoinAt === undefined) ||
        this.chunks.some((chunk) => chunk.mark.gen === gen && chunk.unrouted > 0)
      if (!needed) gen.close()
    }
  }

  private oldestNeeded(): Generation {
    let oldest = this.gen
    for (const chunk of this.chunks) if (chunk.mark.gen.seq < oldest.seq) oldest = chunk.mark.gen
    for (const b of this.behind.values()) {
      if (b.mark.gen.seq < oldest.seq) oldest = b.mark.gen
      for (const chunk of b.chunks) if (chunk.mark.gen.seq < oldest.seq) oldest = chunk.mark.gen
    }
    return oldest
  }

  // --- receipts -----------------------------------------------------------------------------------

  private readonly keys = new Map<string, string>()
  private keyOf(endpoint: string): string {
    let key = this.keys.get(endpoint)
    if (key === undefined) {
      key = this.endpointKey(endpoint)
      this.keys.set(endpoint, key)
    }
    return key
  }

  wants(endpoint: string, chunk: Chunk, position: number): boolean {
    if (this.behind.size === 0 && this.restart === undefined) return true
    const here = { gen: chunk.mark.gen, from: position }
    const b = this.behind.get(endpoint)
    if (b !== undefined) return b.rejoinAt !== undefined && earlier(b.rejoinAt, here)
    if (this.restart === undefined) return true
    const mark = this.restart.marks.get(this.keyOf(endpoint)) ?? this.restart.others
    return !earlier(here, mark)
  }

  /** The head's packets up to the end of `chunk` have all been routed. */
  routedUpTo(chunk: Chunk): void {
    if (chunk.owner !== this) return
    this.routed = { gen: chunk.mark.gen, from: chunk.last }
    // A generation the head has left may now be closed (no packet of it can be parked any more).
    if (chunk.mark.gen !== this.gen || this.ended) this.release()
    // Drains that caught up have no use for their entry once everything before it was routed.
    for (const [endpoint, b] of this.behind) {
      if (b.rejoinAt !== undefined && b.chunks.length === 0 && !earlier(this.routed, b.rejoinAt)) this.behind.delete(endpoint)
    }
    if (this.restart !== undefined && this.passedRestartMarks()) this.restart = undefined
  }

  private passedRestartMarks(): boolean {
    const routed = this.routed!
    if (earlier(routed, this.restart!.others)) return false
    for (const mark of this.restart!.marks.values()) if (earlier(routed, mark)) return false
    return true
  }

  /** Some chunk of `owner` settled: forget the settled ones at the front. */
  settled(owner: ChunkOwner): void {
    const chunks = owner.chunks
    while (chunks.length > 0 && chunks[0]!.outstanding === 0) chunks.shift()
    if (owner !== this && chunks.length === 0) {
      const b = owner as Behind
      if (b.rejoinAt !== undefined && this.routed !== undefined && !earlier(this.routed, b.rejoinAt)) this.behind.delete(b.endpoint)
    }
  }

  park(endpoint: string, chunk: Chunk, position: number, feed: Feed): void {
    this.changed()
    const mark: Mark = { gen: chunk.mark.gen, offset: chunk.mark.offset, from: position }
    const b = this.behind.get(endpoint)
    if (b === undefined) {
      const parked = new Behind(endpoint, feed, mark)
      this.behind.set(endpoint, parked)
      this.onParked(parked)
      return
    }
    if (b.rejoinAt === undefined) return // Already reading its backlog from before this packet.
    b.mark = mark
    b.feed = feed
    b.reader = undefined
    b.rejoinAt = undefined
    this.onParked(b)
  }

  // --- drains behind ------------------------------------------------------------------------------

  /** `endpoint` is no longer routed this file's packets: nothing waits for it any more. */
  forget(endpoint: string): void {
    this.behind.delete(endpoint)
    let forgiven = false
    for (const chunk of this.chunks) forgiven = chunk.forgive(endpoint) || forgiven
    if (forgiven) this.settled(this)
    this.release()
  }

  /** A drain caught up, or stopped being one of this file's: the head goes on if it waited. */
  private resume(): void {
    this.onResume()
  }

  /**
   * Feeds `b` its backlog: reads a chunk of it again from the file and offers it to its drain,
   * until the drain is full, caught up with the head, or gone (its route removed).
   */
  feedBacklog(b: Behind, now: number): BacklogStep {
    this.changed()
    if (this.behind.get(b.endpoint) !== b) return "gone"
    if (b.rejoinAt !== undefined) return "caughtUp"
    this.limitBacklog(b)
    const gen = b.mark.gen
    const atHead = gen === this.gen
    if (b.reader === undefined) b.reader = this.readerAt(b.mark.offset, b.out)
    const reader = b.reader
    const resume = reader.resumeOffset
    // At the head's generation, up to the last line the head handed over; before it, to the end.
    const limit = atHead ? Math.max(reader.offset, Math.floor(this.lastPos)) : gen.size!
    if (atHead && gen.fd === undefined) {
      // The head's generation was truncated and its copy not found: what this drain had yet to
      // read of it is gone (counted when the head moves on). It rejoins the head.
      b.rejoinAt = { gen: this.gen, from: this.lastPos }
      b.reader = undefined
      this.release()
      this.resume()
      return "caughtUp"
    }
    const n = gen.fd === undefined ? 0 : Math.min(CHUNK, limit - reader.offset)
    if (n > 0) {
      const bytesRead = Fs.readSync(gen.fd!, buffer, 0, n, reader.offset)
      if (gen === this.live && (bytesRead < n || !Files.matches(gen.fd!, gen.print))) {
        // Truncated since the head read it (a copytruncate while the head waits for this drain):
        // the generation goes on in the copy, from which this drain reads it next time.
        this.truncated(Fs.fstatSync(gen.fd!), now)
        b.reader = undefined
        return "more"
      }
      reader.feed(buffer.subarray(0, bytesRead), now)
    }
    const ended = !atHead && (gen.fd === undefined || reader.offset >= gen.size!)
    if (ended) reader.endOfFile()
    // Caught up: events the head sent on a timeout are still being gathered here; sent now.
    else if (atHead && Number.isFinite(this.lastPos) && reader.offset >= Math.floor(this.lastPos)) reader.flushEventsSentBy(this.reader, this.lastPos)
    let chunk: Chunk | undefined
    let last = Number.NaN
    for (const line of b.out) {
      if (line.position < b.mark.from) continue
      if (atHead && line.position > this.lastPos) break
      if (chunk === undefined) {
        chunk = new Chunk(this, b, { gen, offset: resume, from: line.position }, line.position, 0)
        b.chunks.push(chunk)
      }
      const offered = b.feed.offer(this.packet(line, now, chunk))
      if (offered === "taken") chunk.offered(b.endpoint)
      if (offered !== "taken") {
        if (chunk.outstanding === 0) b.chunks.pop()
        b.out.length = 0
        if (offered === "gone") {
          this.forget(b.endpoint)
          this.resume()
          return "gone"
        }
        b.mark = { gen, offset: resume, from: line.position }
        b.reader = undefined
        return "full"
      }
      last = line.position
    }
    b.out.length = 0
    if (ended) {
      const next = this.gens[this.gens.indexOf(gen) + 1]
      if (gen.fd === undefined) this.counts.unrecovered++
      if (next === undefined) {
        // The file was deleted and this drain read it all.
        this.behind.delete(b.endpoint)
        this.release()
        this.resume()
        return "caughtUp"
      }
      b.mark = { gen: next, offset: 0, from: Number.NEGATIVE_INFINITY }
      b.reader = undefined
      this.release()
      return "more"
    }
    if (atHead && reader.offset >= Math.floor(this.lastPos)) {
      b.rejoinAt = { gen: this.gen, from: this.lastPos }
      b.reader = undefined
      this.release()
      this.resume()
      return "caughtUp"
    }
    b.mark = { gen, offset: reader.resumeOffset, from: Number.isNaN(last) ? b.mark.from : last + POSITION_STEP / 2 }
    return "more"
  }

  private packet(line: PositionedLine, now: number, receipt: Chunk): LogPacket.LogPacket {
    return LogPacket.make({
      time: Rfc3339.dateOf(Number.isNaN(line.time) ? now : line.time),
      hostname: this.hostname,
      tag: this.tag,
      message: line.text,
      severity: line.stream === "stderr" ? LogPacket.Severity.Error : LogPacket.Severity.Informational,
      facility: LogPacket.Facility.user,
      // Namespace, pod and container, for drains that carry them (OTLP, Loki): one object per file.
      kubernetes: this.file,
      receipt,
      position: line.position
    })
  }

  /** Bytes between where `b` is and the head. */
  backlogBytes(b: Behind): number {
    if (b.rejoinAt !== undefined) return 0
    const at = b.reader?.offset ?? b.mark.offset
    if (b.mark.gen === this.gen) return Math.max(0, this.reader.offset - at)
    let bytes = Math.max(0, (b.mark.gen.size ?? at) - at)
    for (const gen of this.gens) {
      if (gen.seq <= b.mark.gen.seq) continue
      if (gen === this.gen) {
        bytes += this.reader.offset
        break
      }
      bytes += gen.size ?? 0
    }
    return bytes
  }

  /**
   * A drain more than `maxBacklogBytes` behind loses its oldest lines, down to 90 % of the limit:
   * whole generations first, then up to a line start in the head's. Counted for the drain.
   */
  private limitBacklog(b: Behind): void {
    const over = this.backlogBytes(b) - this.options.maxBacklogBytes
    if (over <= 0) return
    let skip = over + Math.floor(this.options.maxBacklogBytes / 10)
    let lines = 0
    let mark = b.mark
    let at = b.reader?.offset ?? mark.offset
    while (skip > 0) {
      const gen = mark.gen
      const end = gen === this.gen ? this.reader.offset : (gen.size ?? at)
      if (end - at <= skip && gen !== this.gen) {
        lines += countLines(gen, at, end, mark.from)
        skip -= end - at
        const next = this.gens[this.gens.indexOf(gen) + 1]!
        mark = { gen: next, offset: 0, from: Number.NEGATIVE_INFINITY }
        at = 0
        continue
      }
      const target = lineStartAfter(gen, Math.min(end, at + skip), end)
      lines += countLines(gen, at, target, mark.from)
      mark = { gen, offset: target, from: target }
      break
    }
    b.mark = mark
    b.reader = undefined
    b.out.length = 0
    this.counts.backlogDropped += lines
    b.feed.dropped(lines, "backlog_limit")
    this.release()
  }

  // --- checkpoints --------------------------------------------------------------------------------

  /** Where the head is: the oldest chunk not routed yet, or where it reads. */
  headMark(): Mark {
    for (const chunk of this.chunks) if (chunk.unrouted > 0) return chunk.mark
    return { gen: this.gen, offset: this.reader.resumeOffset, from: Math.max(this.reader.resumeOffset, this.lastPos + POSITION_STEP / 2) }
  }

  /** A drain's own mark while it is behind (or its backlog not settled). */
  behindMark(b: Behind): Mark | undefined {
    for (const chunk of b.chunks) if (chunk.outstanding > 0) return chunk.mark
    return b.rejoinAt === undefined ? b.mark : undefined
  }

  /**
   * What to save: the generations from the oldest one a mark is in, the head's mark (for every
   * drain not listed), and the marks of drains behind — those parked here, and, just after a
   * restart, those whose place the head has not passed yet.
   */
  checkpoint(): Checkpoints.FileCheckpoint {
    const later = (a: Mark, b: Mark) => (earlier(a, b) ? b : a)
    const head = this.headMark()
    // Each drain's own place where it is behind the head: packets of it not settled, a backlog
    // it reads, or (just after a restart) a place the head has not reached yet.
    const marks = new Map<string, Mark>()
    const lower = (key: string, mark: Mark) => {
      const had = marks.get(key)
      if (had === undefined || earlier(mark, had)) marks.set(key, mark)
    }
    for (const chunk of this.chunks) for (const [endpoint] of chunk.owed) lower(this.keyOf(endpoint), chunk.mark)
    for (const b of this.behind.values()) {
      const mark = this.behindMark(b)
      if (mark !== undefined) lower(this.keyOf(b.endpoint), mark)
    }
    let others = head
    if (this.restart !== undefined) {
      // Just after a restart the head reads from the earliest place any drain needs; drains with
      // no place of their own had everything up to `others`. A drain with its own place has had
      // everything up to the later of it and the head: kept, if that is before `others` (a drain
      // still behind where the others were, the head not past it yet, is not one of the others).
      others = later(head, this.restart.others)
      for (const [key, mark] of this.restart.marks) {
        const place = later(head, mark)
        if (earlier(place, others)) lower(key, place)
      }
    }
    let first = others.gen
    for (const mark of marks.values()) if (mark.gen.seq < first.seq) first = mark.gen
    const gens = this.gens.filter((gen) => gen.seq >= first.seq)
    const at = (mark: Mark): Checkpoints.MarkCheckpoint => ({
      generation: Math.max(0, gens.indexOf(mark.gen)),
      offset: mark.offset,
      from: Number.isFinite(mark.from) ? Math.max(mark.from, mark.offset) : mark.offset
    })
    return {
      path: this.path,
      generations: gens.map((gen) => ({
        dev: gen.identity.dev,
        ino: gen.identity.ino,
        fingerprint: gen.print.fingerprint,
        fingerprintBytes: gen.print.fingerprintBytes,
        ...(gen === this.live ? {} : { size: gen.size ?? 0 })
      })),
      head: at(others),
      behind: Object.fromEntries([...marks].map(([key, mark]) => [key, at(mark)]))
    }
  }
}

/**
 * A follower for `path`: from its checkpoint if it has one (finding each generation again, by
 * inode or first bytes, and the files rotated out since), else from its start, or — on the very
 * first run — from the end of what it holds, as the original did. Undefined if the file is gone.
 */
export const start = (init: {
  readonly path: string
  readonly file: ContainerLog.ContainerFile
  readonly hostname: string
  readonly tag: string
  /** Lines joined into events by this rule, if any. */
  readonly multiline?: Multiline.Rule | undefined
  readonly checkpoint: Checkpoints.FileCheckpoint | undefined
  /** Start at the end (the first run, no checkpoint). */
  readonly atEnd: boolean
  /** When the checkpoint was saved (epoch ms), if known. */
  readonly savedAt?: number | undefined
  readonly options: FollowerOptions
  readonly counts: FollowerCounts
  readonly onParked: (behind: Behind) => void
  readonly endpointKey: (endpoint: string) => string
}): FileFollower | undefined => {
  const fd = Files.openRead(init.path)
  if (fd === undefined) return undefined
  const stat = Fs.fstatSync(fd)
  const livePrint = Files.fingerprintOf(fd, stat.size)
  const make = (gens: Array<Generation>, start: Mark, restart?: FileFollower["restart"]) =>
    new FileFollower({ ...init, gens, start, restart })
  const saved = init.checkpoint
  if (saved === undefined) {
    const gen = new Generation(0, fd, stat, livePrint, stat.mtimeMs)
    const offset = init.atEnd ? Files.lastLineStart(fd, stat.size) : 0
    return make([gen], { gen, offset, from: offset })
  }
  const allMarks = [saved.head, ...Object.values(saved.behind)]
  const gens: Array<Generation> = []
  let live: Generation | undefined
  saved.generations.forEach((g, i) => {
    const needed = Math.max(0, ...allMarks.filter((m) => m.generation === i).map((m) => m.offset))
    const isLast = i === saved.generations.length - 1
    const known = gens.map((x) => x.identity)
    const isLive = () => {
      live = new Generation(i, fd, stat, livePrint, stat.mtimeMs)
      gens.push(live)
    }
    if (g.fingerprintBytes < Files.FINGERPRINT_BYTES && init.savedAt !== undefined) {
      // Too short when saved to be told apart by its first bytes. Renamed away, it kept its inode;
      // still at the path, it is the live file — unless it was truncated since: then it is the
      // oldest copy made since the save that begins as it did.
      let found: { readonly path: string; readonly stat: Fs.Stats } | undefined
      if (!Files.sameIdentity(stat, g)) {
        found = Files.rotatedSince(init.path, 0, [stat, ...known]).find((file) => Files.sameIdentity(file.stat, g) && file.stat.size >= needed)
      } else {
        found = Files.rotatedSince(init.path, init.savedAt, [stat, ...known])
          .find((file) => file.stat.size >= needed && matchesFile(file.path, g))
        if (found === undefined && isLast && g.size === undefined && Files.matches(fd, g) && stat.size >= needed) return isLive()
      }
      const foundFd = found === undefined ? undefined : Files.openRead(found.path)
      const gen = new Generation(i, foundFd, found?.stat ?? g, g, found?.stat.mtimeMs ?? 0)
      gen.size = found?.stat.size ?? needed
      if (foundFd === undefined) init.counts.unrecovered++
      gens.push(gen)
      return
    }
    if (isLast && g.size === undefined && Files.sameIdentity(stat, g) && Files.matches(fd, g) && stat.size >= needed) return isLive()
    const found = Files.findByFingerprint(init.path, g, needed, { prefer: g, exclude: [stat, ...known] })
    const gen = new Generation(i, found?.fd, found?.stat ?? g, g, found?.stat.mtimeMs ?? 0)
    gen.size = found?.stat.size ?? needed
    if (found === undefined) init.counts.unrecovered++
    gens.push(gen)
  })
  if (live === undefined) {
    // Rotated while logtrain was away: the files rotated out since, then the live one.
    const newest = gens.reduce((t, gen) => Math.max(t, gen.mtimeMs), 0)
    const since = Files.rotatedSince(init.path, newest, [stat, ...gens.map((gen) => gen.identity)])
      // (A copy that begins as the live file does is a copy of it, still being written: not one
      // of those rotated out. An empty live file tells nothing.)
      .filter((file) => livePrint.prefix.length === 0 || !Files.agree(Files.headOf(file.path, Files.FINGERPRINT_BYTES), livePrint.prefix))
    for (const file of since) {
      const rotatedFd = Files.openRead(file.path)
      if (rotatedFd === undefined) continue
      const gen = new Generation(gens.length, rotatedFd, file.stat, Files.fingerprintOf(rotatedFd, file.stat.size), file.stat.mtimeMs)
      gen.size = file.stat.size
      gens.push(gen)
    }
    gens.push(new Generation(gens.length, fd, stat, livePrint, stat.mtimeMs))
  }
  const mark = (m: Checkpoints.MarkCheckpoint): Mark => ({ gen: gens[m.generation]!, offset: m.offset, from: m.from })
  const head = mark(saved.head)
  const behind = new Map(Object.entries(saved.behind).map(([key, m]) => [key, mark(m)] as const))
  let start = head
  for (const m of behind.values()) if (earlier(m, start)) start = m
  // Read from the earliest place any drain needs; each drain takes only what comes after its own.
  return make(gens, start, behind.size === 0 ? undefined : { marks: behind, others: head })
}

/** Whether the file at `path` begins with the bytes `print` was taken from. */
const matchesFile = (path: string, print: Files.Fingerprint): boolean => {
  const fd = Files.openRead(path)
  if (fd === undefined) return false
  try {
    return Files.matches(fd, print)
  } finally {
    Files.closeQuietly(fd)
  }
}

/** Lines of `gen` between two offsets ending at or after position `wanted` (lines given up on; the others were had). */
const countLines = (gen: Generation, from: number, to: number, wanted: number): number => {
  if (gen.fd === undefined) return 0
  let lines = 0
  for (let at = from; at < to;) {
    const n = Fs.readSync(gen.fd, buffer, 0, Math.min(CHUNK, to - at), at)
    if (n === 0) break
    for (let i = buffer.indexOf(10, 0); i >= 0 && i < n; i = buffer.indexOf(10, i + 1)) if (at + i + 1 >= wanted) lines++
    at += n
  }
  return lines
}

/** The start of the first line at or after `at` (before `end`), or `end`. */
const lineStartAfter = (gen: Generation, at: number, end: number): number => {
  if (gen.fd === undefined || at === 0) return at
  for (let from = at - 1; from < end;) {
    const n = Fs.readSync(gen.fd, buffer, 0, Math.min(CHUNK, end - from), from)
    if (n === 0) break
    const newline = buffer.subarray(0, n).indexOf(10)
    if (newline >= 0) return from + newline + 1
    from += n
  }
  return end
}
