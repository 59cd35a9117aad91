/**
 * When each followed file is looked at. One fiber reads for all of them, synchronously, and
 * hands what it read to the router as one batch per round; only the Ingest queue makes it wait.
 *
 * - Busy files (read from lately) are looked at every `pollInterval`; a file with more to read
 *   than one look takes is looked at again at once, after the others' turn.
 * - Quiet files (nothing new for QUIET_AFTER looks) are looked at every `quietInterval` — and at
 *   once when they change: each has an inotify watch (fs.watch) that marks it dirty, and dirty
 *   files are looked at together within NUDGE_DELAY. So a quiet file costs nothing between its
 *   rare looks (an fstat, and a stat of its path to see a rotation), and idle CPU stays about
 *   flat in the number of files; a file that cannot be watched (the inotify limit) is still
 *   found by its quiet looks.
 * - Time is Effect's Clock (tests drive it with TestClock); the wait for the next look races a
 *   Queue.dropping(1) the watches offer to.
 */
import { Clock, Duration, Effect, Queue } from "effect"
import * as Fs from "node:fs"
import type * as LogPacket from "../../../domain/LogPacket.ts"
import type { FileFollower, LookResult } from "./FileFollower.ts"
import * as Files from "./files.ts"

/** Empty looks before a busy file counts as quiet. */
const QUIET_AFTER = 4
/** How long after a change a quiet file is looked at (with the others changed meanwhile). */
const NUDGE_DELAY_MS = 20
/**
 * Most bytes one look reads from one file before the others have their turn (and before what was
 * read goes to the router: while it is saturated, no more than this waits in memory).
 */
const BURST = 64 * 1024
/** Packets of several files handed to the router together, up to about this many. */
const BATCH = 1024

export interface Followed {
  readonly follower: FileFollower
  watcher: Fs.FSWatcher | undefined
  /** The inode watched (a rename rotation means watching the new file). */
  watchedIno: number
  busy: boolean
  emptyLooks: number
  /** When a quiet file is next looked at; its place in the quiet queue is valid while this matches. */
  quietAt: number
  dirty: boolean
  /** Removed: looks and watch over. */
  gone: boolean
}

export interface PollerOptions {
  readonly pollInterval: Duration.Duration
  readonly quietInterval: Duration.Duration
  /** Hands packets to the router (waits while it is saturated). */
  readonly offer: (packets: ReadonlyArray<LogPacket.LogPacket>) => Effect.Effect<void>
  /** A file is done with (deleted, read to its end, nothing behind). */
  readonly done: (followed: Followed) => void
  /** Reading a file failed: it is dropped (and found again by the next scan). */
  readonly failed: (followed: Followed, error: unknown) => Effect.Effect<void>
  readonly watchFailed: () => void
}

export const make = Effect.fnUntraced(function*(options: PollerOptions) {
  const wake = yield* Queue.dropping<void>(1)
  const busy = new Set<Followed>()
  const dirty = new Set<Followed>()
  /** Quiet files in the order they are due (one interval: appending keeps the order). */
  let quiet: Array<{ readonly entry: Followed; readonly at: number }> = []
  let quietHead = 0
  let nudgeTimer: ReturnType<typeof setTimeout> | undefined
  const pollMs = Duration.toMillis(options.pollInterval)
  const quietMs = Duration.toMillis(options.quietInterval)

  const nudge = (entry: Followed) => {
    if (entry.gone || entry.dirty) return
    entry.dirty = true
    dirty.add(entry)
    if (nudgeTimer !== undefined) return
    nudgeTimer = setTimeout(() => {
      nudgeTimer = undefined
      Queue.offerUnsafe(wake, undefined)
    }, NUDGE_DELAY_MS)
    nudgeTimer.unref()
  }

  const unwatch = (entry: Followed) => {
    entry.watcher?.close()
    entry.watcher = undefined
  }

  /** Watches the file the path names now. */
  const watch = (entry: Followed) => {
    unwatch(entry)
    const live = entry.follower.live
    if (live === undefined) return
    entry.watchedIno = live.identity.ino
    try {
      const watcher = Fs.watch(entry.follower.path, { persistent: false }, () => nudge(entry))
      // Deleted, or the watch failed: the quiet looks still find the writes.
      watcher.on("error", () => {
        if (entry.watcher === watcher) unwatch(entry)
      })
      entry.watcher = watcher
    } catch (error) {
      // Gone already: its look finds out. Anything else (ENOSPC: too many watches) is counted.
      if (!Files.isMissing(error)) options.watchFailed()
    }
  }

  const goQuiet = (entry: Followed, now: number) => {
    entry.busy = false
    busy.delete(entry)
    entry.quietAt = now + quietMs
    quiet.push({ entry, at: entry.quietAt })
  }

  const goBusy = (entry: Followed) => {
    entry.emptyLooks = 0
    if (entry.busy) return
    entry.busy = true
    entry.quietAt = Number.NaN
    busy.add(entry)
  }

  const remove = (entry: Followed) => {
    entry.gone = true
    unwatch(entry)
    busy.delete(entry)
    dirty.delete(entry)
  }

  const add = (follower: FileFollower): Followed => {
    const entry: Followed = { follower, watcher: undefined, watchedIno: -1, busy: false, emptyLooks: 0, quietAt: Number.NaN, dirty: false, gone: false }
    watch(entry)
    goBusy(entry)
    Queue.offerUnsafe(wake, undefined)
    return entry
  }

  let nextBusyAt = 0
  let packets: Array<LogPacket.LogPacket> = []
  /** Files with more to read than their look took: looked at again straight away. */
  let hot: Array<Followed> = []

  const look = (entry: Followed, now: number, checkPath: boolean) =>
    Effect.suspend(() => {
      if (entry.gone) return Effect.void
      entry.dirty = false
      const before = entry.follower.reader.offset
      let result: LookResult
      try {
        result = entry.follower.look(now, BURST, packets, checkPath)
      } catch (error) {
        remove(entry)
        return options.failed(entry, error)
      }
      if (result === "done") {
        remove(entry)
        options.done(entry)
      } else if (result === "more") {
        goBusy(entry)
        hot.push(entry)
      } else if (entry.follower.reader.offset !== before || entry.follower.unsettled) {
        goBusy(entry)
      } else if (entry.busy && ++entry.emptyLooks >= QUIET_AFTER) {
        goQuiet(entry, now)
      } else if (!entry.busy) {
        entry.quietAt = now + quietMs
        quiet.push({ entry, at: entry.quietAt })
      }
      const live = entry.follower.live
      if (live !== undefined && live.identity.ino !== entry.watchedIno && !entry.gone) watch(entry)
      if (packets.length < BATCH) return Effect.void
      const batch = packets
      packets = []
      return options.offer(batch)
    })

  /** One round: the hot files, the busy ones when due, the dirty ones, the quiet ones due. */
  const round = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const again = hot
    hot = []
    for (const entry of again) yield* look(entry, now, false)
    if (now >= nextBusyAt) {
      nextBusyAt = now + pollMs
      // (A look may move the file out of `busy`: deleting while iterating a Set is safe.)
      for (const entry of busy) {
        if (!again.includes(entry)) yield* look(entry, now, entry.emptyLooks > 0 || entry.follower.unsettled)
      }
    }
    if (dirty.size > 0) {
      const changed = [...dirty]
      dirty.clear()
      for (const entry of changed) yield* look(entry, now, true)
    }
    while (quietHead < quiet.length && quiet[quietHead]!.at <= now) {
      const { at, entry } = quiet[quietHead++]!
      // Stale places (the file became busy, or was looked at since) are skipped.
      if (!entry.busy && !entry.gone && entry.quietAt === at) yield* look(entry, now, true)
    }
    if (quietHead > 1024 && quietHead * 2 > quiet.length) {
      quiet = quiet.slice(quietHead)
      quietHead = 0
    }
    if (packets.length > 0) {
      const batch = packets
      packets = []
      yield* options.offer(batch)
    }
  })

  /** Until the next round is due, or a file changes. */
  const pause = Effect.gen(function*() {
    if (hot.length > 0) return yield* Effect.yieldNow
    const now = yield* Clock.currentTimeMillis
    let until = busy.size > 0 ? nextBusyAt : Number.POSITIVE_INFINITY
    for (let i = quietHead; i < quiet.length; i++) {
      const { at, entry } = quiet[i]!
      if (!entry.busy && !entry.gone && entry.quietAt === at) {
        until = Math.min(until, at)
        break
      }
    }
    const wait = Math.max(0, Math.min(until - now, quietMs))
    yield* Effect.raceFirst(Effect.sleep(Duration.millis(wait)), Queue.take(wake))
  })

  const run = Effect.forever(Effect.andThen(round, pause))

  const close = Effect.sync(() => {
    clearTimeout(nudgeTimer)
    for (const entry of busy) unwatch(entry)
    for (const { entry } of quiet) unwatch(entry)
    for (const entry of dirty) unwatch(entry)
  })

  return { add, remove, run, close, nudge }
})
