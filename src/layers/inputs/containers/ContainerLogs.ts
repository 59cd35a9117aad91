/**
 * Container logs (`KUBERNETES=true`): tails the files in `KUBERNETES_LOG_PATH`
 * (/var/log/containers), names each file's lines after its pod (PodMetadata), and hands them to
 * the router — without losing or repeating a line across rotations and restarts.
 *
 * - Discovery: one `fs.watch` on the directory (not one watcher per file) for quick pick-up, and a
 *   rescan every `rescanInterval` so a missed event costs seconds, not lines.
 * - Reading: one open file per followed file, read from where it was left. Every `pollInterval`
 *   one pass looks at all the files at their end, synchronously (an fstat each; a chunk read
 *   where they grew) and hands the lines of all of them to the router as one batch; a file with
 *   more to read, or something to sort out (rotation, truncation, deletion), has its own fiber
 *   do it. A waiting file that is written to (an inotify watch per file tells) is looked at within
 *   NUDGE_DELAY_MS instead. Reading waits while the router is saturated (Ingest is bounded).
 * - Rotation by rename: the path now names another file; the old one is read to its end (until
 *   the new one has data — the runtime has switched — or `rotateWait` passes), then closed, and
 *   the new one read from its start.
 * - Rotation by copytruncate: the file shrank, or its first bytes changed. What had not been read
 *   yet is read from the copy (the file next to it that starts with the same bytes), then the file
 *   from its start.
 * - A deleted file is read to its end and closed after `goneGrace`.
 * - Checkpoints (STATE_DIR): offsets of what was handed to the router, saved every
 *   `checkpointInterval` and on shutdown. On start a file with a checkpoint resumes there (if the
 *   path now holds another file, the checkpointed one is looked for next to it and finished
 *   first); a file without starts at its end on the very first run, as the original did, and at
 *   its start otherwise (it appeared while logtrain was away).
 */
import { Data, Duration, Effect, Layer, Queue, Semaphore } from "effect"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import { join } from "node:path"
import * as ContainerLog from "../../../domain/ContainerLog.ts"
import * as LogPacket from "../../../domain/LogPacket.ts"
import { Ingest } from "../../Ingest.ts"
import { PodMetadata } from "../../kubernetes/PodMetadata.ts"
import * as Log from "../../Log.ts"
import { Readiness } from "../../Readiness.ts"
import * as Checkpoints from "../../storage/Checkpoints.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as InputStats from "../InputStats.ts"
import * as Files from "./files.ts"

export const INPUT = "kubernetes"

export interface Options {
  /** The directory of container logs (KUBERNETES_LOG_PATH). */
  readonly path: string
  /** Where checkpoints are kept (STATE_DIR). */
  readonly stateDir: string
  readonly excludeNamespaces: ReadonlyArray<string>
  /** Only pods of Akkeris apps (ONLY_AKKERIS). */
  readonly onlyAkkeris: boolean
  /** A joined line longer than this many bytes is cut into several (and counted). */
  readonly maxLineBytes: number
  /** A line whose last piece has not come after this long is sent as it is. */
  readonly partialTimeout: Duration.Duration
  readonly pollInterval?: Duration.Duration | undefined
  readonly rescanInterval?: Duration.Duration | undefined
  readonly checkpointInterval?: Duration.Duration | undefined
  /** How long a rotated file is read while its successor stays empty. */
  readonly rotateWait?: Duration.Duration | undefined
  /** How long a deleted file is kept open (read to its end) before it is released. */
  readonly goneGrace?: Duration.Duration | undefined
}

export class ContainerLogsError extends Data.TaggedError("ContainerLogsError")<{ readonly detail: string }> {
  override get message(): string {
    return this.detail
  }
}

const CHUNK = 64 * 1024
/** Read at most this much from one file before letting the others have a turn. */
const BURST = 1024 * 1024
/** Files reading a chunk and handing it over at once (see `readTurn`). */
const READ_TURNS = 4
/** How long after a write to a waiting file it is looked at (with the others written to meanwhile). */
const NUDGE_DELAY_MS = 20

/**
 * Read buffers, shared by all the files: a buffer is needed only while a read is in flight and its
 * bytes are decoded (decoding copies what it keeps), so a node with a thousand quiet files does
 * not hold a thousand of them. A few are kept for reuse.
 */
const buffers: Array<Buffer> = []
const takeBuffer = (): Buffer => buffers.pop() ?? Buffer.allocUnsafeSlow(CHUNK)
const giveBack = (buffer: Buffer): void => {
  if (buffers.length < 4) buffers.push(buffer)
}

interface Follower {
  readonly path: string
  readonly file: ContainerLog.ContainerFile
  hostname: string
  tag: string
  handle: FsP.FileHandle
  identity: Files.Identity
  print: Files.LiveFingerprint
  /** The next byte to read. */
  offset: number
  /** Bytes read of a line whose newline has not come yet. */
  carry: Buffer | undefined
  /** Skipping the rest of a line too long to keep. */
  skipping: boolean
  /** Everything before this byte has been handed to the router: what a checkpoint records. */
  committed: number
  readonly joiner: ContainerLog.LineJoiner
  /** Lines completed and not yet handed to the router. */
  readonly out: Array<ContainerLog.Line>
  /** Whether its fiber holds the turn to read (see `readTurn`). */
  inTurn: boolean
  goneSince: number | undefined
  rotatedSince: number | undefined
  /** When it was last inspected (at the end of what was there). */
  lastLook: number
  /** Rotated files and copies already read (the last few). */
  readonly consumed: Array<Files.Identity>
  /**
   * The newest modification time of a copy read, or when following began: a copy made since that
   * is not among those read holds lines not yet read, whatever else is found.
   */
  copiesSince: number
  /** The modification time seen when the file was last found with nothing new. */
  quietSince: number
  /** Set while its fiber waits for the next look (see `glance`): wakes it. */
  wake: (() => void) | undefined
  /** Tells of writes to the file being read (inotify), so that a waiting file is looked at soon. */
  watcher: Fs.FSWatcher | undefined
  /** Read once more before waiting: the watch began after the last read. */
  recheck: boolean
}

const isMissing = (error: unknown) => {
  const code = (error as NodeJS.ErrnoException).code
  return code === "ENOENT" || code === "ENOTDIR"
}

export const layer = (options: Options): Layer.Layer<never, Checkpoints.CheckpointError | ContainerLogsError, Ingest | Readiness | PodMetadata> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const ingest = yield* Ingest
    const metadata = yield* PodMetadata
    const check = yield* (yield* Readiness).register(`input:${INPUT}`)
    const stats = yield* InputStats.make(INPUT)
    const scope = yield* Effect.scope
    /** Held by a file's fiber while it reads a chunk and hands it over (see `readTurn`). */
    const turn = yield* Semaphore.make(READ_TURNS)
    const pollInterval = options.pollInterval ?? Duration.millis(250)
    const rescanInterval = options.rescanInterval ?? Duration.seconds(2)
    const checkpointInterval = options.checkpointInterval ?? Duration.seconds(5)
    const rotateWait = Duration.toMillis(options.rotateWait ?? Duration.seconds(5))
    const goneGrace = Duration.toMillis(options.goneGrace ?? Duration.seconds(5))
    const partialTimeout = Duration.toMillis(options.partialTimeout)
    const maxPhysicalLine = Math.max(4 * options.maxLineBytes, 256 * 1024)
    const excluded = new Set(options.excludeNamespaces)

    const directory = yield* Effect.tryPromise({
      try: () => FsP.stat(options.path),
      catch: (error) => new ContainerLogsError({ detail: `KUBERNETES_LOG_PATH ${options.path}: ${(error as Error).message}` })
    })
    if (!directory.isDirectory()) return yield* new ContainerLogsError({ detail: `KUBERNETES_LOG_PATH ${options.path}: not a directory` })

    const { store, unreadable } = yield* Checkpoints.open(options.stateDir)
    if (unreadable !== undefined) {
      yield* Log.warn("checkpoints unreadable: files will be read from their start", { stateDir: options.stateDir, error: unreadable })
    }
    /** Checkpoints read at start, until their file is picked up. */
    const saved = new Map(store.initial)
    /** Checkpoints of files dropped after a read error, until the next scan picks them up again. */
    const retry = new Map<string, Checkpoints.FileCheckpoint>()
    const followers = new Map<string, Follower>()
    // Registered before anything reads: runs last at shutdown, once every follower has stopped.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        clearTimeout(nudgeTimer)
        return Promise.all([...followers.values()].map((f) => {
          unwatch(f)
          return f.handle.close().catch(() => undefined)
        }))
      })
    )
    /** Files not followed (excluded namespace, not an Akkeris app), by path. */
    const ignored = new Set<string>()
    const counts = { renames: 0, truncations: 0, unrecovered: 0, released: 0, splitOfReleased: 0, watchFailures: 0 }

    yield* Telemetry.gauge("logtrain_input_files", "Files followed.", { input: INPUT }, () => followers.size)
    yield* Telemetry.counter("logtrain_input_file_rotations_total", "Rotations followed.", { input: INPUT, kind: "rename" }, () => counts.renames)
    yield* Telemetry.counter("logtrain_input_file_rotations_total", "Rotations followed.", { input: INPUT, kind: "copytruncate" }, () =>
      counts.truncations)
    yield* Telemetry.counter(
      "logtrain_input_file_truncations_unrecovered_total",
      "Truncated files whose unread end could not be found in a copy (lines may be lost).",
      { input: INPUT },
      () => counts.unrecovered
    )
    yield* Telemetry.counter(
      "logtrain_input_file_watch_failures_total",
      "Files that could not be watched (e.g. fs.inotify.max_user_watches reached): their writes are found by the next poll instead.",
      { input: INPUT },
      () => counts.watchFailures
    )
    yield* Telemetry.counter("logtrain_input_lines_split_total", "Lines cut at KUBERNETES_MAX_LINE_SIZE.", { input: INPUT }, () => {
      let n = counts.splitOfReleased
      for (const f of followers.values()) n += f.joiner.split
      return n
    })

    const io = <A>(what: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (error) => new ContainerLogsError({ detail: `${what}: ${(error as Error).message}` }) })
    /**
     * The same for what is done at every look at a file (stat, read): synchronously, ~20× cheaper
     * than through the thread pool for local files in the page cache (see files.ts).
     */
    const sync = <A>(what: string, run: () => A) =>
      Effect.try({ try: run, catch: (error) => new ContainerLogsError({ detail: `${what}: ${(error as Error).message}` }) })

    /** Decodes what was read (continuing the carried part line), joining pieces into `f.out`. */
    const consume = (f: Follower, chunk: Buffer, now: number) => {
      const data = f.carry === undefined ? chunk : Buffer.concat([f.carry, chunk])
      const base = f.offset - data.length
      let start = 0
      if (f.skipping) {
        const newline = data.indexOf(10)
        if (newline < 0) {
          f.carry = undefined
          return
        }
        f.skipping = false
        start = newline + 1
      }
      for (let newline = data.indexOf(10, start); newline >= 0; newline = data.indexOf(10, start)) {
        if (newline > start) {
          stats.bytes += newline - start + 1
          const piece = ContainerLog.decodeLine(data.toString("utf8", start, newline))
          if (ContainerLog.isLineError(piece)) {
            stats.malformed++
            stats.lastMalformed = { message: `${piece.reason} in ${f.path}: ${JSON.stringify(piece.excerpt)}` }
          } else {
            f.joiner.push(piece, base + start, now)
          }
        }
        start = newline + 1
      }
      if (start >= data.length) {
        f.carry = undefined
      } else if (data.length - start > maxPhysicalLine) {
        // No newline in sight: a line no runtime writes. Drop it up to its newline.
        stats.malformed++
        stats.lastMalformed = { message: `a line longer than ${maxPhysicalLine} bytes in ${f.path} was dropped` }
        f.carry = undefined
        f.skipping = true
      } else {
        f.carry = Buffer.from(data.subarray(start))
      }
    }

    /** Where a checkpoint may put this file now: before any line not yet handed over. */
    const readPosition = (f: Follower) => f.offset - (f.carry?.length ?? 0)

    /**
     * What `f.committed` becomes once the lines in `f.out` are handed over: the start of a line
     * still being joined, or else where reading is.
     */
    const commitPosition = (f: Follower) => f.joiner.pendingOffset ?? (f.skipping ? f.offset : readPosition(f))

    /**
     * Hands the completed lines to the router; only then do they count as read. Interruptible: a
     * shutdown while the router is full must not hang. What was not handed over is read again
     * after a restart (a few lines may then arrive twice, none is lost).
     */
    const handOver = (f: Follower) =>
      Effect.suspend(() => {
        const lines = f.out.splice(0)
        const committed = commitPosition(f)
        if (lines.length === 0) {
          f.committed = committed
          return Effect.void
        }
        const packets: Array<LogPacket.LogPacket> = []
        packetsOf(f, lines, packets)
        return Effect.map(ingest.offer(packets), () => {
          f.committed = committed
        })
      })

    /** Lines of `f` as packets, added to `packets`. */
    const packetsOf = (f: Follower, lines: ReadonlyArray<ContainerLog.Line>, packets: Array<LogPacket.LogPacket>) => {
      const now = Date.now()
      for (const line of lines) {
        packets.push(LogPacket.make({
          time: new Date(Number.isNaN(line.time) ? now : line.time),
          hostname: f.hostname,
          tag: f.tag,
          message: line.text,
          severity: line.stream === "stderr" ? LogPacket.Severity.Error : LogPacket.Severity.Informational,
          facility: LogPacket.Facility.user
        }))
      }
      stats.records += lines.length
    }

    /** Reads `handle` (a rotated file or copy: it no longer changes) from `f.offset` to its end. */
    const readFrom = Effect.fnUntraced(function*(f: Follower, handle: FsP.FileHandle, limit: number) {
      let total = 0
      while (total < limit) {
        const bytesRead = yield* readTurn(f, handle, () => Effect.succeed(true))
        if (bytesRead === 0) break
        total += bytesRead
      }
      return total
    })

    /**
     * Reads one chunk of `handle` at `f.offset` into a shared buffer and, if `valid` says the bytes
     * are still those of the file being followed, decodes them (moving `f.offset` on). Returns the
     * bytes read, or -1 when they were dropped.
     */
    const readChunk = Effect.fnUntraced(function*<E>(f: Follower, handle: FsP.FileHandle, valid: () => Effect.Effect<boolean, E>) {
      const buffer = takeBuffer()
      const bytesRead = yield* sync(`read ${f.path}`, () => Fs.readSync(handle.fd, buffer, 0, CHUNK, f.offset))
      if (!(yield* valid())) {
        giveBack(buffer)
        return -1
      }
      if (bytesRead > 0) {
        f.offset += bytesRead
        consume(f, buffer.subarray(0, bytesRead), Date.now())
      }
      giveBack(buffer)
      return bytesRead
    })

    /**
     * `readChunk`, then the lines handed over, by READ_TURNS files at a time. Reading is
     * synchronous, so files gain nothing by reading side by side, but each would hold its decoded
     * lines while it waits for the router: 52 busy files held up to ~20,000 packets, too long for
     * V8's young generation (`npm run bench:queue-producers`: 52 producers offering to one queue
     * take 3.5x the time of one, most of it GC; with turns, little more). File-tail bench: peak RSS
     * 188–194 MB without turns, 155–165 MB with 4 (473–532k vs 460–524k lines/s; 1 turn: 453–518k).
     */
    const readTurn = <E>(f: Follower, handle: FsP.FileHandle, valid: () => Effect.Effect<boolean, E>) => {
      const read = Effect.flatMap(readChunk(f, handle, valid), (bytesRead) =>
        bytesRead > 0 ? Effect.as(handOver(f), bytesRead) : Effect.succeed(bytesRead))
      // Already held: `valid` found a truncation and reads the copy while the turn is held.
      return Effect.suspend(() =>
        f.inTurn ? read : turn.withPermit(Effect.suspend(() => {
          f.inTurn = true
          return Effect.ensuring(read, Effect.sync(() => {
            f.inTurn = false
          }))
        }))
      )
    }

    /** Sends what is still being joined (the file ends here), and forgets the part line. */
    const endOfFile = (f: Follower) => {
      f.joiner.flushOlderThan(Number.POSITIVE_INFINITY)
      f.carry = undefined
      f.skipping = false
      return handOver(f)
    }

    const switchTo = Effect.fnUntraced(function*(f: Follower, handle: FsP.FileHandle, stat: Fs.Stats) {
      yield* io(`close ${f.path}`, () => f.handle.close()).pipe(Effect.ignore)
      f.handle = handle
      f.identity = stat
      f.offset = 0
      f.committed = 0
      f.print = yield* sync(`read ${f.path}`, () => Files.fingerprintOf(handle, stat.size))
      watch(f)
    })

    /**
     * Reads, whole and oldest first, the files rotated out of `f.path` after `afterMs` other than
     * `exclude`: rotations that happened between two looks, or while reading was held back.
     */
    const readRotated = Effect.fnUntraced(function*(f: Follower, afterMs: number, exclude: ReadonlyArray<Files.Identity>) {
      const missed = yield* io(`list the rotated files of ${f.path}`, () => Files.rotatedSince(f.path, afterMs, [...exclude, ...f.consumed]))
      for (const rotated of missed) {
        consumed(f, rotated.stat, rotated.stat.mtimeMs)
        const handle = yield* Effect.tryPromise(() => FsP.open(rotated.path, "r")).pipe(Effect.option)
        if (handle._tag === "None") continue
        f.offset = 0
        f.carry = undefined
        yield* readFrom(f, handle.value, Number.POSITIVE_INFINITY).pipe(Effect.ensuring(Effect.promise(() => handle.value.close())))
        yield* endOfFile(f)
        yield* Log.debug("read a rotated file found in between", { file: f.path, rotated: rotated.path })
      }
      return missed.length
    })

    /** Remembers a rotated file or copy as read (the last few), so that it is never read twice. */
    const consumed = (f: Follower, identity: Files.Identity, mtimeMs?: number) => {
      f.consumed.push({ dev: identity.dev, ino: identity.ino })
      if (f.consumed.length > 32) f.consumed.shift()
      if (mtimeMs !== undefined) f.copiesSince = Math.max(f.copiesSince, mtimeMs)
    }

    /**
     * The copies of a truncated file that hold what was not read: the copy of what was being read
     * (it starts with the same bytes, and is at least as long as what was read), then any later
     * ones (truncated again since). A file known only by its first few bytes (it was short at the
     * last look) cannot be told from older copies by them: only copies made since are taken.
     */
    const copiesOf = (f: Follower, own: Files.Identity) =>
      io(`find the copies of ${f.path}`, async () => {
        const from = f.offset
        const fits = async (path: string, size: number) => {
          if (size < from) return false
          const handle = await FsP.open(path, "r")
          try {
            return Files.matches(handle, f.print)
          } finally {
            await handle.close()
          }
        }
        const exclude = [own, ...f.consumed]
        if (f.print.fingerprintBytes >= Files.FINGERPRINT_BYTES) {
          const copy = await Files.findSibling(f.path, async (stat, handle) =>
            stat.size >= from && !exclude.some((identity) => Files.sameIdentity(identity, stat)) && Files.matches(handle, f.print))
          // Copies made since the last one read, other than this one: generations that went by
          // unseen (the file truncated twice between two looks, or while a print was taken). They
          // are read whole, after the one being continued: later, rather than never.
          const unseen = await completed(f, await Files.rotatedSince(f.path, f.copiesSince, copy === undefined ? exclude : [copy.stat, ...exclude]))
          if (copy === undefined) return unseen.map((c) => ({ ...c, whole: true }))
          await copy.handle.close()
          return [{ path: copy.path, stat: copy.stat }, ...unseen]
        }
        const recent = await completed(f, await Files.rotatedSince(f.path, f.lastLook - 1000, exclude))
        while (recent.length > 0 && !(await fits(recent[0]!.path, recent[0]!.stat.size))) recent.shift()
        return recent
      })

    /**
     * The copies among `copies` that are complete: a copy that begins like the live file does now
     * is a copy of what is still there (perhaps still being written): it is read once the file
     * has been truncated after it, as the copy of that generation.
     */
    const completed = async (f: Follower, copies: Array<{ readonly path: string; readonly stat: Fs.Stats }>) => {
      if (copies.length === 0) return copies
      const live = await Files.headOf(f.path, Files.FINGERPRINT_BYTES)
      if (live.length === 0) return copies
      const done: typeof copies = []
      for (const copy of copies) {
        if (!Files.agree(await Files.headOf(copy.path, Files.FINGERPRINT_BYTES), live)) done.push(copy)
      }
      return done
    }

    /**
     * The file shrank or was rewritten: read what is left in its copies, then the file from its
     * start. The file's new first bytes are taken before looking for more copies, so a truncation
     * while the copies are read is either found now or noticed at the next look.
     */
    const truncated = Effect.fnUntraced(function*(f: Follower, found: ReadonlyArray<{ readonly path: string; readonly stat: Fs.Stats; readonly whole?: boolean }>) {
      const from = f.offset
      if (found.length === 0) {
        counts.truncations++
        counts.unrecovered++
        yield* Log.warn("log file truncated and no copy found next to it: lines written after the last read may be lost", {
          file: f.path,
          readUpTo: from
        })
      }
      const done: Array<Files.Identity> = []
      let copies: ReadonlyArray<{ readonly path: string; readonly stat: Fs.Stats; readonly whole?: boolean }> = found
      let first = true
      while (true) {
        let newest = 0
        for (const copy of copies) {
          counts.truncations++
          done.push(copy.stat)
          consumed(f, copy.stat, copy.stat.mtimeMs)
          newest = Math.max(newest, copy.stat.mtimeMs)
          const handle = yield* Effect.tryPromise(() => FsP.open(copy.path, "r")).pipe(Effect.option)
          if (handle._tag === "None") continue
          // The first copy continues what was read; later ones are read whole.
          if (!first || copy.whole === true) f.offset = 0
          first = false
          yield* readFrom(f, handle.value, Number.POSITIVE_INFINITY).pipe(Effect.ensuring(Effect.promise(() => handle.value.close())))
          yield* endOfFile(f)
          yield* Log.debug("log file truncated; read what was left from its copy", { file: f.path, copy: copy.path })
        }
        yield* endOfFile(f)
        const stat = yield* io(`stat ${f.path}`, () => f.handle.stat())
        f.print = yield* sync(`read ${f.path}`, () => Files.fingerprintOf(f.handle, stat.size))
        f.offset = 0
        f.committed = 0
        if (copies.length === 0) return
        // Truncated again while those were read?
        copies = yield* io(`list the copies of ${f.path}`, async () =>
          completed(f, await Files.rotatedSince(f.path, newest, [stat, ...done, ...f.consumed])))
      }
    })

    const release = Effect.fnUntraced(function*(f: Follower, why: string) {
      yield* endOfFile(f)
      forget(f)
      counts.splitOfReleased += f.joiner.split
      counts.released++
      yield* io(`close ${f.path}`, () => f.handle.close()).pipe(Effect.ignore)
      yield* Log.debug("log file released", { file: f.path, why })
    })

    /**
     * At the end of what is there: has the path been rotated, truncated or deleted? Returns false
     * when the follower is done.
     */
    const inspect = Effect.fnUntraced(function*(f: Follower) {
      const now = Date.now()
      const stat = yield* Effect.try(() => Fs.statSync(f.path)).pipe(
        Effect.catch((error) => (isMissing(error.cause) ? Effect.succeed(undefined) : Effect.fail(error)))
      )
      if (stat === undefined) {
        f.goneSince ??= now
        if (now - f.goneSince < goneGrace) return true
        yield* release(f, "deleted")
        return false
      }
      f.goneSince = undefined
      if (!Files.sameIdentity(stat, f.identity)) {
        f.rotatedSince ??= now
        // The runtime writes to the old file until it reopens: wait for the new one to have data.
        if (stat.size === 0 && now - f.rotatedSince < rotateWait) return true
        const next = yield* io(`open ${f.path}`, () => FsP.open(f.path, "r"))
        const nextStat = yield* io(`stat ${f.path}`, () => next.stat())
        yield* readFrom(f, f.handle, Number.POSITIVE_INFINITY)
        yield* endOfFile(f)
        const last = yield* io(`stat ${f.path}`, () => f.handle.stat())
        // Rotated more than once since the last look: read the files in between too.
        counts.renames += 1 + (yield* readRotated(f, last.mtimeMs, [f.identity, nextStat]))
        consumed(f, f.identity, last.mtimeMs)
        yield* switchTo(f, next, nextStat)
        f.rotatedSince = undefined
        return true
      }
      f.joiner.flushOlderThan(now - partialTimeout)
      yield* handOver(f)
      return true
    })

    /**
     * A file that was too short to be told apart by its first bytes (at most FINGERPRINT_BYTES)
     * was truncated if copies of it were made since the last look — unless it was renamed away
     * (the path names another file now): then it is read to its end.
     */
    const checkShort = Effect.fnUntraced(function*(f: Follower) {
      const now = Date.now()
      const own = yield* sync(`stat ${f.path}`, () => Fs.fstatSync(f.handle.fd))
      if (own.size > f.print.fingerprintBytes) {
        const current = yield* Effect.try(() => Fs.statSync(f.path)).pipe(Effect.option)
        if (current._tag === "Some" && Files.sameIdentity(current.value, own)) {
          // The longer print is taken before looking for copies: a truncation after it is
          // found by it later; one before it leaves a copy that is found now. (Taken after,
          // it could be the print of the next generation, and this one's copy never read.)
          const print = yield* sync(`read ${f.path}`, () => Files.fingerprintOf(f.handle, own.size))
          const copies = yield* copiesOf(f, own)
          if (copies.length > 0) yield* truncated(f, copies)
          else f.print = print
        }
      }
      f.lastLook = now
    })

    /** Still the same file (it begins with the same bytes)? If not, it was truncated: read on from its copies. */
    const sameFile = Effect.fnUntraced(function*(f: Follower) {
      if (yield* sync(`read ${f.path}`, () => Files.matches(f.handle, f.print))) return true
      const own = yield* sync(`stat ${f.path}`, () => Fs.fstatSync(f.handle.fd))
      yield* truncated(f, yield* copiesOf(f, own))
      return false
    })

    /**
     * Whether the live file has nothing new, by one fstat: same size as what was read, and not
     * written since it was last found so (a write that left the size alone, a truncation refilled
     * to the same length, changes the time: then the file is read and its first bytes checked).
     */
    const quiet = Effect.fnUntraced(function*(f: Follower) {
      if (f.print.fingerprintBytes < Files.FINGERPRINT_BYTES) return false
      const stat = yield* sync(`stat ${f.path}`, () => Fs.fstatSync(f.handle.fd))
      if (stat.size !== f.offset) return false
      if (stat.mtimeMs === f.quietSince) return true
      f.quietSince = stat.mtimeMs
      return false
    })

    /**
     * Reads the live file from `f.offset`, a burst of it (less if a read comes short: the end of
     * what was there); returns the bytes read. After each read, the file must still begin with the
     * same bytes: a truncation (copytruncate) just before or during the read would have put other
     * bytes at that offset, so the chunk is dropped and read again from the copy.
     */
    const readLive = Effect.fnUntraced(function*(f: Follower) {
      let total = 0
      if (yield* quiet(f)) return total
      while (total < BURST) {
        if (f.print.fingerprintBytes < Files.FINGERPRINT_BYTES) yield* checkShort(f)
        const bytesRead = yield* readTurn(f, f.handle, () => sameFile(f))
        if (bytesRead < 0) continue
        if (bytesRead === 0) return total
        total += bytesRead
        if (bytesRead < CHUNK) return total
      }
      return total
    })

    const follow = (f: Follower) =>
      Effect.gen(function*() {
        while (true) {
          const total = yield* readLive(f)
          if (total > 0) {
            // Still being written: read on (after the other fibers' turn) until a look finds nothing.
            f.joiner.flushOlderThan(Date.now() - partialTimeout)
            yield* handOver(f)
            yield* Effect.yieldNow
            continue
          }
          // Nothing new: was the file rotated, truncated or deleted? (While it grows, it is still
          // the one being written.)
          if (!(yield* inspect(f))) return
          // Until the next look finds something to do (see `glance`), or its file is written to
          // (see `nudge`).
          yield* Effect.callback<void>((resume) => {
            if (f.recheck) {
              f.recheck = false
              return resume(Effect.void)
            }
            f.wake = () => {
              f.wake = undefined
              resume(Effect.void)
            }
            return Effect.sync(() => {
              f.wake = undefined
            })
          })
        }
      }).pipe(
        Effect.catch((error) =>
          Effect.gen(function*() {
            // Dropped: the next scan picks the file up again, from its last checkpoint.
            retry.set(f.path, checkpointOf(f))
            forget(f)
            yield* Effect.promise(() => f.handle.close().catch(() => undefined))
            yield* Log.warn("log file read failed; it will be picked up again", { file: f.path, error: error.message })
          })
        )
      )

    /**
     * One look at a file whose fiber waits, done synchronously: the common cases — nothing new, or
     * new lines of the same file — are handled here, one chunk of each file, and the lines of all
     * files go to the router as one batch. Anything else (a short file, a truncation, a rotation or
     * deletion, more than a chunk to read, an error) wakes the file's fiber, which deals with it as
     * `follow` does. Returns whether to wake it.
     */
    const glance = (f: Follower, now: number): boolean => {
      if (f.print.fingerprintBytes < Files.FINGERPRINT_BYTES) return true
      const stat = Fs.fstatSync(f.handle.fd)
      if (stat.size < f.offset) return true
      let more = false
      if (stat.size === f.offset) {
        if (stat.mtimeMs !== f.quietSince) {
          // Written without growing: a truncation refilled to the same length?
          if (!Files.matches(f.handle, f.print)) return true
          f.quietSince = stat.mtimeMs
        }
        // Rotated or deleted: the fiber sees to it (inspect).
        const current = Fs.statSync(f.path, { throwIfNoEntry: false })
        if (current === undefined || !Files.sameIdentity(current, f.identity)) return true
      } else {
        const buffer = takeBuffer()
        try {
          const bytesRead = Fs.readSync(f.handle.fd, buffer, 0, CHUNK, f.offset)
          // Truncated just before or during the read: the fiber reads on from the copy.
          if (!Files.matches(f.handle, f.print)) return true
          f.offset += bytesRead
          consume(f, buffer.subarray(0, bytesRead), now)
          more = bytesRead === CHUNK
        } finally {
          giveBack(buffer)
        }
      }
      f.joiner.flushOlderThan(now - partialTimeout)
      return more
    }

    // A file whose fiber waits is looked at every pollInterval, and sooner when it is written to:
    // inotify (fs.watch) tells of the write, and the files written to within NUDGE_DELAY get one
    // look together. Without the watch (a failure, a missed event), the periodic look finds the
    // write; with it, a file that was quiet has its lines on their way within NUDGE_DELAY, not up
    // to pollInterval later, at a cost in proportion to the writes.
    /** Waiting files written to since the last look. */
    const dirty = new Set<Follower>()
    let nudgeTimer: ReturnType<typeof setTimeout> | undefined
    /** Resumes the look loop early; set while it waits. */
    let lookNow: (() => void) | undefined
    let nudged = false
    const nudge = (f: Follower) => {
      // A busy fiber sees the write itself. (One that has just found nothing and is about to
      // wait misses it: the next write or the periodic look brings it.)
      if (f.wake === undefined) return
      dirty.add(f)
      if (nudgeTimer !== undefined) return
      nudgeTimer = setTimeout(() => {
        nudgeTimer = undefined
        if (lookNow === undefined) nudged = true
        else lookNow()
      }, NUDGE_DELAY_MS)
      nudgeTimer.unref()
    }
    const unwatch = (f: Follower) => {
      f.watcher?.close()
      f.watcher = undefined
      dirty.delete(f)
    }
    /** No longer followed: out of the table, its watch closed. */
    const forget = (f: Follower) => {
      followers.delete(f.path)
      unwatch(f)
    }
    /** Watches the file `f.path` names now (renamed away, it keeps the watch: `switchTo` watches the new one). */
    const watch = (f: Follower) => {
      unwatch(f)
      try {
        const watcher = Fs.watch(f.path, { persistent: false }, () => nudge(f))
        // Deleted, or the watch failed: the periodic look still finds the writes.
        watcher.on("error", () => {
          if (f.watcher === watcher) unwatch(f)
        })
        f.watcher = watcher
        // Written before the watch began? Its fiber reads once more before it waits.
        f.recheck = true
      } catch (error) {
        // Gone already: its fiber finds out. Anything else (ENOSPC: too many watches) is counted.
        if (!isMissing(error)) counts.watchFailures++
      }
    }
    /** Waits `ms` for the next look, or less when a waiting file is written to. */
    const untilLook = (ms: number) => Effect.raceFirst(
      Effect.sleep(Duration.millis(ms)),
      Effect.callback<void>((resume) => {
        if (nudged) {
          nudged = false
          return resume(Effect.void)
        }
        lookNow = () => {
          lookNow = undefined
          resume(Effect.void)
        }
        return Effect.sync(() => {
          lookNow = undefined
        })
      })
    )

    /** Most packets in one batch of `look`. */
    const BATCH = 4096

    /**
     * A glance at each of `which` whose fiber waits; one batch to the router. Every `pollInterval`
     * all files, and in between the ones written to (see `nudge`).
     */
    const look = Effect.fnUntraced(function*(which: Iterable<Follower>) {
      const now = Date.now()
      const wake: Array<Follower> = []
      let packets: Array<LogPacket.LogPacket> = []
      let commits: Array<readonly [Follower, number]> = []
      const send = Effect.suspend(() => {
        const sent = commits
        const batch = packets
        packets = []
        commits = []
        return Effect.map(ingest.offer(batch), () => {
          for (const [f, committed] of sent) f.committed = committed
        })
      })
      for (const f of which) {
        if (f.wake === undefined) continue
        dirty.delete(f)
        let busy: boolean
        try {
          busy = glance(f, now)
        } catch {
          busy = true // The fiber meets the error again, and deals with it.
        }
        if (busy) wake.push(f)
        if (f.out.length > 0) {
          packetsOf(f, f.out.splice(0), packets)
          commits.push([f, commitPosition(f)])
          if (packets.length >= BATCH) yield* send
        } else if (!busy) {
          f.committed = commitPosition(f)
        }
      }
      if (packets.length > 0) yield* send
      // After the batch: what a fiber then reads comes after what was read here.
      for (const f of wake) f.wake?.()
    })

    const checkpointOf = (f: Follower): Checkpoints.FileCheckpoint => ({
      path: f.path,
      dev: f.identity.dev,
      ino: f.identity.ino,
      fingerprint: f.print.fingerprint,
      fingerprintBytes: f.print.fingerprintBytes,
      offset: f.committed
    })

    /** Starts following `path`, `firstScan` telling whether logtrain is just starting. */
    const start = (path: string, file: ContainerLog.ContainerFile, firstScan: boolean) =>
      Effect.gen(function*() {
        const info = yield* metadata.describe(file.namespace, file.pod)
        if (options.onlyAkkeris && info.akkerisApp === false) {
          ignored.add(path)
          return
        }
        const handle = yield* Effect.tryPromise(() => FsP.open(path, "r")).pipe(Effect.option)
        if (handle._tag === "None") return // A link whose file is gone: nothing to read.
        const stat = yield* io(`stat ${path}`, () => handle.value.stat())
        const print = yield* sync(`read ${path}`, () => Files.fingerprintOf(handle.value, stat.size))
        const out: Array<ContainerLog.Line> = []
        const f: Follower = {
          inTurn: false,
          path,
          file,
          hostname: info.naming.hostname,
          tag: info.naming.tag,
          handle: handle.value,
          identity: stat,
          print,
          offset: 0,
          carry: undefined,
          skipping: false,
          committed: 0,
          joiner: new ContainerLog.LineJoiner(options.maxLineBytes, (line) => out.push(line)),
          out,
          goneSince: undefined,
          rotatedSince: undefined,
          lastLook: Date.now(),
          consumed: [],
          copiesSince: Date.now(),
          quietSince: Number.NaN,
          wake: undefined,
          watcher: undefined,
          recheck: false
        }

        const checkpoint = retry.get(path) ?? saved.get(path)
        retry.delete(path)
        saved.delete(path)
        const resumes = checkpoint !== undefined && Files.sameIdentity(checkpoint, stat) &&
          (yield* sync(`read ${path}`, () => Files.matches(handle.value, checkpoint)))
        let previous: { readonly handle: FsP.FileHandle; readonly offset: number; readonly stat: Fs.Stats } | undefined
        if (resumes) {
          f.offset = checkpoint.offset <= stat.size ? checkpoint.offset : 0
        } else {
          if (checkpoint !== undefined) {
            // Rotated while logtrain was away: finish the file the checkpoint was about first.
            const old = yield* io(`find the rotated ${path}`, () =>
              Files.findSibling(path, async (s, h) => Files.sameIdentity(s, checkpoint) && Files.matches(h, checkpoint)))
            if (old !== undefined) previous = { handle: old.handle, offset: checkpoint.offset, stat: old.stat }
          }
          f.offset = firstScan && !store.existed ? yield* io(`read ${path}`, () => Files.lastLineStart(handle.value, stat.size)) : 0
        }
        f.committed = f.offset
        followers.set(path, f)
        watch(f)
        yield* Log.debug("following log file", { file: path, hostname: f.hostname, tag: f.tag, from: f.offset, named: info.known ? "api" : "file name" })
        const run = Effect.gen(function*() {
          if (previous !== undefined) {
            const offset = f.offset
            f.offset = previous.offset
            yield* readFrom(f, previous.handle, Number.POSITIVE_INFINITY).pipe(
              Effect.ensuring(Effect.promise(() => previous.handle.close()))
            )
            yield* endOfFile(f)
            counts.renames += 1 + (yield* readRotated(f, previous.stat.mtimeMs, [previous.stat, f.identity]))
            f.offset = offset
            f.committed = offset
          }
          yield* follow(f)
        })
        yield* Effect.forkIn(run, scope)
      })

    let firstScan = true
    const scan = Effect.gen(function*() {
      const names = yield* io(`read ${options.path}`, () => FsP.readdir(options.path))
      const present = new Set<string>()
      for (const name of names) {
        const file = ContainerLog.parseFileName(name)
        if (file === undefined) continue
        const path = join(options.path, name)
        present.add(path)
        if (followers.has(path) || ignored.has(path)) continue
        if (excluded.has(file.namespace)) {
          ignored.add(path)
          continue
        }
        yield* start(path, file, firstScan)
      }
      for (const path of ignored) if (!present.has(path)) ignored.delete(path)
      firstScan = false
    })

    const save = Effect.suspend(() => {
      const entries = [...followers.values()].map(checkpointOf)
      for (const [path, checkpoint] of retry) if (!followers.has(path)) entries.push(checkpoint)
      return store.save(entries)
    })

    // Saved last on shutdown: finalizers run in reverse, after the followers have stopped.
    yield* Effect.addFinalizer(() =>
      save.pipe(Effect.catch((error) => Log.error("cannot save checkpoints", { error: error.message })))
    )

    const wake = yield* Queue.dropping<void>(1)
    const watcher = yield* Effect.acquireRelease(
      Effect.sync(() => {
        try {
          const w = Fs.watch(options.path, { persistent: false }, () => Queue.offerUnsafe(wake, undefined))
          w.on("error", () => undefined)
          return w
        } catch {
          return undefined
        }
      }),
      (w) => Effect.sync(() => w?.close())
    )
    if (watcher === undefined) yield* Log.warn("cannot watch the log directory; new files are found by rescanning", { path: options.path })

    yield* scan
    yield* check.ready
    yield* Log.info("container logs followed", {
      path: options.path,
      files: followers.size,
      ignored: ignored.size,
      from: store.existed ? "checkpoints" : "the end of each file (first run)"
    })

    yield* Effect.gen(function*() {
      while (true) {
        yield* Effect.raceFirst(Queue.take(wake), Effect.sleep(rescanInterval))
        // Let a burst of directory events settle into one scan.
        yield* Effect.sleep(Duration.millis(20))
        yield* Queue.clear(wake)
        yield* scan.pipe(Effect.catch((error) => Log.warn("scanning the log directory failed", { error: error.message })))
      }
    }).pipe(Effect.forkIn(scope))

    yield* Effect.gen(function*() {
      const every = Duration.toMillis(pollInterval)
      let lastFull = Date.now()
      while (true) {
        yield* untilLook(Math.max(0, lastFull + every - Date.now()))
        const now = Date.now()
        if (now - lastFull >= every) {
          lastFull = now
          yield* look(followers.values())
        } else {
          yield* look([...dirty])
        }
      }
    }).pipe(Effect.forkIn(scope))

    yield* save.pipe(
      Effect.catch((error) => Log.error("cannot save checkpoints", { error: error.message })),
      Effect.delay(checkpointInterval),
      Effect.forever,
      Effect.forkIn(scope)
    )
  }))
