/**
 * Container logs (`KUBERNETES=true`): follows the files in `KUBERNETES_LOG_PATH`
 * (/var/log/containers), names each file's lines after its pod (PodMetadata), and hands them to
 * the router. The file is the buffer: a file's checkpoint moves only past lines every drain they
 * were routed to is done with, and a drain that cannot take more leaves its backlog on disk, to
 * be read again for it when it has room — nothing lost across restarts, rotations, or a drain
 * that is down, and no drain holds up another.
 *
 * The pieces, by role (as Vector's file source is split):
 * - FileFollower.ts — one file: its head reader, what it reads and hands over (and, with it,
 *   generations.ts, receipts.ts, behind.ts for drains behind, rotation.ts, checkpoint.ts);
 * - files.ts — identity, fingerprints, finding rotated files and copies (the fingerprinter);
 * - Poller.ts — when each file is looked at (busy, quiet, changed);
 * - Backlogs.ts — feeding full drains their backlog from disk;
 * - storage/Checkpoints.ts — the checkpointer;
 * - this module — discovery (scan, directory watch, exclusions, resuming from checkpoints), the
 *   metrics, and the wiring.
 */
import { Clock, Data, Duration, Effect, Fiber, Layer, Option, Queue, Schedule } from "effect"
import * as Fs from "node:fs"
import { join } from "node:path"
import { setFlagsFromString } from "node:v8"
import * as ContainerLog from "../../../domain/ContainerLog.ts"
import * as Multiline from "../../../domain/Multiline.ts"
import { Ingest } from "../../routing/Ingest.ts"
import { PodMetadata } from "../../kubernetes/PodMetadata.ts"
import * as Log from "../../Log.ts"
import { datasourcesLoaded, Readiness } from "../../Readiness.ts"
import * as Checkpoints from "../../storage/Checkpoints.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as InputStats from "../InputStats.ts"
import * as Backlogs from "./Backlogs.ts"
import * as FollowerCheckpoint from "./checkpoint.ts"
import * as FileFollower from "./FileFollower.ts"
import * as Poller from "./Poller.ts"

export const INPUT = "kubernetes"

export interface Options {
  /** The directory of container logs (KUBERNETES_LOG_PATH). */
  readonly path: string
  readonly excludeNamespaces: ReadonlyArray<string>
  /** Only pods of Akkeris apps (ONLY_AKKERIS). */
  readonly onlyAkkeris: boolean
  /** A joined line longer than this many bytes is cut into several (and counted). */
  readonly maxLineBytes: number
  /** A line whose last piece has not come after this long is sent as it is. */
  readonly partialTimeout: Duration.Duration
  /** A multiline event no line has joined for this long is sent as it is (KUBERNETES_MULTILINE_TIMEOUT, 1 s). */
  readonly multilineTimeout?: Duration.Duration | undefined
  /** The longest multiline event, in bytes (KUBERNETES_MULTILINE_MAX_SIZE, 64 KiB); beyond, it is cut and counted. */
  readonly multilineMaxBytes?: number | undefined
  /** How far a drain may fall behind a file before its oldest lines are skipped (KUBERNETES_MAX_BACKLOG). */
  readonly maxBacklogBytes?: number | undefined
  readonly pollInterval?: Duration.Duration | undefined
  readonly quietInterval?: Duration.Duration | undefined
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

/** The default of KUBERNETES_MAX_BACKLOG: more than a kubelet keeps of a container's logs (5 files of 10 MiB). */
export const DEFAULT_MAX_BACKLOG_BYTES = 64 * 1024 * 1024

const ms = (d: Duration.Duration | undefined, fallback: number) => (d === undefined ? fallback : Duration.toMillis(d))

/** The default of KUBERNETES_MULTILINE_MAX_SIZE. */
export const DEFAULT_MULTILINE_MAX_BYTES = 64 * 1024

/**
 * Multiline regexes (user input) run on V8's linear-time engine, which must be turned on before
 * one is compiled. (Without it they are still checked for the shapes that backtrack badly.)
 */
export const enableLinearRegExp = (): void => {
  try {
    setFlagsFromString("--enable-experimental-regexp-engine")
  } catch {
    // Not V8: the structural check alone.
  }
}

/** Files started at once before the others have their turn (a node with thousands of new files). */
const START_BATCH = 256

export const layer = (options: Options): Layer.Layer<never, ContainerLogsError, Ingest | Readiness | PodMetadata | Checkpoints.Checkpoints> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const ingest = yield* Ingest
    const metadata = yield* PodMetadata
    const store = yield* Checkpoints.Checkpoints
    const check = yield* (yield* Readiness).register(`input:${INPUT}`)
    const stats = yield* InputStats.make(INPUT)
    const excluded = new Set(options.excludeNamespaces)
    const followerOptions: FileFollower.FollowerOptions = {
      maxLineBytes: options.maxLineBytes,
      partialTimeout: Duration.toMillis(options.partialTimeout),
      rotateWait: ms(options.rotateWait, 5000),
      goneGrace: ms(options.goneGrace, 5000),
      maxBacklogBytes: options.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES,
      multilineTimeout: ms(options.multilineTimeout, 1000),
      multilineMaxBytes: options.multilineMaxBytes ?? DEFAULT_MULTILINE_MAX_BYTES
    }
    enableLinearRegExp()

    const directory = yield* Effect.try({
      try: () => Fs.statSync(options.path),
      catch: (error) => new ContainerLogsError({ detail: `KUBERNETES_LOG_PATH ${options.path}: ${(error as Error).message}` })
    })
    if (!directory.isDirectory()) return yield* new ContainerLogsError({ detail: `KUBERNETES_LOG_PATH ${options.path}: not a directory` })
    if (store.unreadable !== undefined) {
      yield* Log.warn("checkpoints unreadable: files will be read from their start", { stateDir: store.stateDir, error: store.unreadable })
    }

    // The input's own counters (records, bytes, malformed lines) are counted by the followers.
    const counts: FileFollower.FollowerCounts = Object.assign(stats, {
      renames: 0,
      truncations: 0,
      unrecovered: 0,
      splitOfReleased: 0,
      backlogDropped: 0,
      multilineCut: 0,
      unsaved: true
    })
    /** Multiline annotations refused (a bad regex, an unknown rule): counted, warned about once per file and annotation. */
    let multilineRefused = 0
    const multilineWarned = new Set<string>()
    /** Rules by annotation: one compiled regex however many files use it. */
    const rules = new Map<string, Multiline.Rule | Multiline.MultilineError>()
    const ruleOf = (annotation: string) => {
      let rule = rules.get(annotation)
      if (rule === undefined) {
        if (rules.size >= 1000) rules.clear()
        rule = Multiline.parse(annotation)
        rules.set(annotation, rule)
      }
      return rule
    }
    /** Checkpoints read at start, until their file is picked up. */
    const saved = new Map(store.initial)
    /** Checkpoints of files dropped after a read error, until the next scan picks them up again. */
    const retry = new Map<string, Checkpoints.FileCheckpoint>()
    const followed = new Map<string, Poller.Followed>()
    /** Files no longer followed (deleted) whose drains behind still read them. */
    const draining = new Set<FileFollower.FileFollower>()
    /** Files not followed (excluded namespace, not an Akkeris app), by path. */
    const ignored = new Set<string>()
    let watchFailures = 0

    const backlogs = yield* Backlogs.make()
    const poller = yield* Poller.make({
      // Busy files polled together 20 times a second: a line is picked up within 50 ms.
      pollInterval: options.pollInterval ?? Duration.millis(50),
      quietInterval: options.quietInterval ?? Duration.seconds(5),
      offer: ingest.offer,
      done: (entry) => {
        const follower = entry.follower
        followed.delete(follower.path)
        counts.unsaved = true
        counts.splitOfReleased += follower.split
        if (follower.behind.size > 0) draining.add(follower)
      },
      failed: (entry, error) =>
        Effect.suspend(() => {
          // Dropped: the next scan picks the file up again, from where it was.
          const follower = entry.follower
          followed.delete(follower.path)
          counts.unsaved = true
          retry.set(follower.path, FollowerCheckpoint.checkpointOf(follower))
          for (const gen of follower.gens) gen.close()
          return Log.warn("log file read failed; it will be picked up again", { file: follower.path, error: String(error) })
        }),
      watchFailed: () => {
        watchFailures++
      }
    })

    yield* Telemetry.gauge("logtrain_input_files", "Files followed.", { input: INPUT }, () => followed.size)
    yield* Telemetry.counter("logtrain_input_file_rotations_total", "Rotations followed.", { input: INPUT, kind: "rename" }, () => counts.renames)
    yield* Telemetry.counter("logtrain_input_file_rotations_total", "Rotations followed.", { input: INPUT, kind: "copytruncate" }, () =>
      counts.truncations)
    yield* Telemetry.counter(
      "logtrain_input_file_truncations_unrecovered_total",
      "Truncated or rotated files whose unread part could not be found (lines may be lost).",
      { input: INPUT },
      () => counts.unrecovered
    )
    yield* Telemetry.counter(
      "logtrain_input_file_watch_failures_total",
      "Files that could not be watched (e.g. fs.inotify.max_user_watches reached): their writes are found by their quiet looks instead.",
      { input: INPUT },
      () => watchFailures
    )
    yield* Telemetry.counter("logtrain_input_lines_split_total", "Lines cut at KUBERNETES_MAX_LINE_SIZE.", { input: INPUT }, () => {
      let n = counts.splitOfReleased
      for (const entry of followed.values()) n += entry.follower.split
      return n
    })
    yield* Telemetry.counter(
      "logtrain_input_multiline_cut_total",
      "Multiline events cut at KUBERNETES_MULTILINE_MAX_SIZE (the line that would make one longer begins the next).",
      { input: INPUT },
      () => counts.multilineCut
    )
    yield* Telemetry.counter(
      "logtrain_input_multiline_refused_total",
      "Files whose logtrain.akkeris.io/multiline annotation was refused (unknown rule, a regex too long or that could backtrack catastrophically): their lines go out one by one.",
      { input: INPUT },
      () => multilineRefused
    )
    yield* Telemetry.gauge(
      "logtrain_input_backlog_bytes",
      "Bytes of files that drains which were full have yet to read again (their backlog, on disk).",
      { input: INPUT },
      backlogs.bytes
    )
    yield* Telemetry.gauge("logtrain_input_backlog_files", "Files some drain is behind on.", { input: INPUT }, () => {
      let n = 0
      for (const files of backlogs.files().values()) n += files.size
      return n
    })
    yield* Telemetry.counter(
      "logtrain_input_backlog_dropped_total",
      "Lines skipped for drains more than KUBERNETES_MAX_BACKLOG behind (also in logtrain_drain_dropped_total{reason=\"backlog_limit\"}).",
      { input: INPUT },
      () => counts.backlogDropped
    )

    const entries = (): Array<Checkpoints.FileCheckpoint> => {
      const list = [...followed.values()].map((entry) => FollowerCheckpoint.checkpointOf(entry.follower))
      for (const follower of draining) list.push(FollowerCheckpoint.checkpointOf(follower))
      for (const [path, checkpoint] of retry) if (!followed.has(path)) list.push(checkpoint)
      return list
    }
    // The last save comes when the checkpoint store is released: after the drains have flushed.
    store.saveAtStop(entries)
    // Built only when some place changed: with thousands of quiet files, that is most of the time.
    const save = Effect.suspend(() => {
      if (!counts.unsaved) return Effect.void
      counts.unsaved = false
      return store.save(entries())
    }).pipe(
      Effect.catch((error) => Log.error("cannot save checkpoints", { error: error.message }))
    )

    /** Starts following `path`, `firstScan` telling whether logtrain is just starting. */
    const start = (path: string, file: ContainerLog.ContainerFile, firstScan: boolean) =>
      Effect.gen(function*() {
        const info = yield* metadata.describe(file.namespace, file.pod)
        if (options.onlyAkkeris && info.akkerisApp === false) {
          ignored.add(path)
          return
        }
        if (followed.has(path)) return
        let multiline: Multiline.Rule | undefined
        if (info.multiline !== undefined && info.multiline.trim().length > 0) {
          const rule = ruleOf(info.multiline)
          if (Multiline.isError(rule)) {
            multilineRefused++
            const key = `${path}\u0000${info.multiline}`
            if (!multilineWarned.has(key)) {
              if (multilineWarned.size >= 10_000) multilineWarned.clear()
              multilineWarned.add(key)
              yield* Log.warn("multiline annotation refused: lines go out one by one", { file: path, error: rule.message })
            }
          } else {
            multiline = rule
          }
        }
        const checkpoint = retry.get(path) ?? saved.get(path)
        retry.delete(path)
        saved.delete(path)
        let follower: FileFollower.FileFollower | undefined
        try {
          follower = FollowerCheckpoint.start({
            path,
            file,
            hostname: info.naming.hostname,
            tag: info.naming.tag,
            multiline,
            checkpoint,
            atEnd: firstScan && !store.existed,
            savedAt: store.savedAt,
            options: followerOptions,
            counts,
            onParked: (behind) => backlogs.add(follower!, behind),
            endpointKey: Checkpoints.endpointKey
          })
        } catch (error) {
          if (checkpoint !== undefined) retry.set(path, checkpoint)
          return yield* Log.warn("cannot open log file; it will be tried again", { file: path, error: String(error) })
        }
        if (follower === undefined) {
          // A link whose file is not there (yet, or any more): looked for again at the next scan.
          unopened.add(path)
          return
        }
        unopened.delete(path)
        const entry = poller.add(follower, yield* Clock.currentTimeMillis)
        follower.onResume = () => poller.nudge(entry)
        followed.set(path, entry)
        counts.unsaved = true
        yield* Log.debug("following log file", { file: path, hostname: follower.hostname, tag: follower.tag, named: info.known ? "api" : "file name" })
      })

    /** Links whose file could not be opened yet (a kubelet may link before the runtime writes): scanned for again. */
    const unopened = new Set<string>()
    let firstScan = true
    /** The directory's modification time at the last scan: unchanged, no file came or went. */
    let scannedMtime = Number.NaN
    const scan = Effect.gen(function*() {
      const mtime = Fs.statSync(options.path, { throwIfNoEntry: false })?.mtimeMs ?? Number.NaN
      if (mtime === scannedMtime && retry.size === 0 && unopened.size === 0) return
      scannedMtime = mtime
      const names = yield* Effect.try({
        try: () => Fs.readdirSync(options.path),
        catch: (error) => new ContainerLogsError({ detail: `read ${options.path}: ${(error as Error).message}` })
      })
      const present = new Set<string>()
      const fresh: Array<readonly [string, ContainerLog.ContainerFile]> = []
      for (const name of names) {
        const file = ContainerLog.parseFileName(name)
        if (file === undefined) continue
        const path = join(options.path, name)
        present.add(path)
        if (followed.has(path) || ignored.has(path)) continue
        if (excluded.has(file.namespace)) {
          ignored.add(path)
          continue
        }
        fresh.push([path, file])
      }
      for (const path of ignored) if (!present.has(path)) ignored.delete(path)
      for (const path of unopened) if (!present.has(path)) unopened.delete(path)
      // Pod metadata may need the API (a pod just started): several asked at once; files started
      // in batches, so thousands of new files are picked up in seconds without stalling the rest.
      const first = firstScan
      for (let i = 0; i < fresh.length; i += START_BATCH) {
        yield* Effect.forEach(fresh.slice(i, i + START_BATCH), ([path, file]) => start(path, file, first), { concurrency: 16, discard: true })
        yield* Effect.yieldNow
      }
      firstScan = false
    })

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

    // Registered before anything reads: runs last, once the loops have stopped.
    yield* Effect.addFinalizer(() =>
      Effect.andThen(poller.close, () =>
        Effect.sync(() => {
          for (const entry of followed.values()) for (const gen of entry.follower.gens) gen.close()
          for (const follower of draining) for (const gen of follower.gens) gen.close()
        }))
    )

    yield* scan
    // Saved at once: a kill before the first periodic save must not look like a first run (files
    // would start at their end, and what was written meanwhile be skipped).
    yield* save
    yield* check.ready
    yield* Log.info("container logs followed", {
      path: options.path,
      files: followed.size,
      ignored: ignored.size,
      from: store.existed ? "checkpoints" : "the end of each file (first run)"
    })

    const rescanInterval = options.rescanInterval ?? Duration.seconds(2)
    yield* Effect.gen(function*() {
      while (true) {
        yield* Effect.raceFirst(Queue.take(wake), Effect.sleep(rescanInterval))
        // Let a burst of directory events settle into one scan.
        yield* Effect.sleep(Duration.millis(20))
        yield* Queue.clear(wake)
        yield* scan.pipe(Effect.catch((error) => Log.warn("scanning the log directory failed", { error: error.message })))
        // Files deleted while drains were behind: forgotten once those have read them.
        for (const follower of draining) if (follower.behind.size === 0) draining.delete(follower)
      }
    }).pipe(Effect.forkScoped)

    // Lines are read once every datasource has loaded its routes: read before, a line would find no
    // route and count as a dead packet, and its place be passed — lost though it was on disk (after
    // a restart, for as long as the Kubernetes API takes to list). Meanwhile the files wait.
    const routesKnown = yield* Effect.forkScoped(datasourcesLoaded)
    yield* Effect.gen(function*() {
      const waited = yield* Effect.timeoutOption(Fiber.join(routesKnown), Duration.seconds(1))
      if (Option.isNone(waited)) {
        yield* Log.info("container logs wait for the datasources to load their routes before reading")
        yield* Fiber.join(routesKnown)
        yield* Log.info("container logs: routes loaded; reading")
      }
      return yield* poller.run
    }).pipe(Effect.forkScoped)

    // Every second (an unchanged checkpoint is not written again): after a kill, what is read twice
    // is what was delivered in the last second or two.
    const every = options.checkpointInterval ?? Duration.seconds(1)
    yield* save.pipe(Effect.repeat(Schedule.spaced(every)), Effect.delay(every), Effect.forkScoped)
  }))
