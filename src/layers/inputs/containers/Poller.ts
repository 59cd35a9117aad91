/**
 * When each followed file is looked at. One fiber reads for all of them, synchronously, and
 * hands what it read to the router as one batch per round; only the Ingest queue makes it wait.
 *
 * - Busy files (read from lately) are looked at together, every `pollInterval`, on one timer; a
 *   file with more to read than one look takes is looked at again at once, after the others' turn.
 *   A file busy for a while (UNWATCH_AFTER) is not watched: its writes would only wake the
 *   process once each for what the next poll finds anyway (on a node, 50 files written 20 times
 *   a second each are a thousand wake-ups a second, against 20 polls).
 * - Quiet files (nothing new for QUIET_AFTER) are looked at when they change: each has an
 *   inotify watch (fs.watch) that marks it dirty on a write, a rename or a deletion, and dirty
 *   files are looked at together within NUDGE_DELAY. Between changes, a watched quiet file is
 *   looked at only every WATCHED_QUIET (in case an event was lost: the kernel's queue of them
 *   can overflow), so idle CPU stays about flat in the number of files; a file that cannot be
 *   watched (the inotify limit) is looked at every `quietInterval`. A look reads; an fstat, and a
 *   stat of the path to see a rotation, only when it found nothing (see FileFollower.look).
 * - The wait for the next round is one timer, cut short by a change: no fiber per round.
 */
import { Duration, Effect } from "effect"
import * as Fs from "node:fs"
import type * as LogPacket from "../../../domain/LogPacket.ts"
import type { FileFollower, LookResult } from "./FileFollower.ts"
import * as Files from "./files.ts"
import { objects } from "./receipts.ts"

/** How long a busy file finds nothing before it counts as quiet (and is watched again). */
const QUIET_AFTER_MS = 1000
/**
 * A file busy this long, and found with something new by this many looks since it went busy, is
 * not watched any more (it is polled).
 */
const UNWATCH_AFTER_MS = 1000
const UNWATCH_AFTER_LOOKS = 10
/** Every how many empty looks in a row a busy file's look also takes an fstat (see FileFollower.look). */
const STAT_EVERY = 4
/** How long after a change a quiet file is looked at (with the others changed meanwhile). */
const NUDGE_DELAY_MS = 20
/**
 * Most bytes one look reads from one file before the others have their turn (and before what was
 * read goes to the router: while it is saturated, no more than this waits in memory).
 */
const BURST = 64 * 1024
/** Packets of several files handed to the router together, up to about this many. */
const BATCH = 1024
/** How often a watched quiet file is looked at anyway. */
const WATCHED_QUIET_MS = 30_000

/** How a round looks at a file: again at once (more to read), as a busy one, as one changed or due. */
const HOT = 0
const BUSY = 1
const CHANGED = 2

export interface Followed {
  readonly follower: FileFollower
  watcher: Fs.FSWatcher | undefined
  /** The inode watched (a rename rotation means watching the new file). */
  watchedIno: number
  /** Whether it should be watched (not when busy for long: it is polled). */
  watching: boolean
  busy: boolean
  /** When it last went busy. */
  busySince: number
  /** When a look last found something (or it went busy). */
  foundAt: number
  /** Looks that found something since it went busy. */
  finds: number
  /** When it was last looked at. */
  lookedAt: number
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

export const make = (options: PollerOptions) => Effect.sync(() => {
  const busy = new Set<Followed>()
  const dirty = new Set<Followed>()
  /** Quiet files in the order they are due: watched, and not (one interval each: appending keeps the order). */
  const quietQueues = [new QuietQueue(WATCHED_QUIET_MS), new QuietQueue(Duration.toMillis(options.quietInterval))]
  const quietQueue = (entry: Followed) => quietQueues[entry.watcher === undefined ? 1 : 0]!
  let nudgeTimer: ReturnType<typeof setTimeout> | undefined
  const pollMs = Duration.toMillis(options.pollInterval)

  /**
   * A round is due now (a change, a file added): the waiting timer, if any, is cut short; if the
   * poller is not waiting, it does not wait next time.
   */
  let woken = false
  let wake = () => {
    woken = true
  }

  const nudge = (entry: Followed) => {
    if (entry.gone || entry.dirty) return
    entry.dirty = true
    dirty.add(entry)
    if (nudgeTimer !== undefined) return
    nudgeTimer = setTimeout(() => {
      nudgeTimer = undefined
      wake()
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
    entry.watching = true
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
    if (!entry.watching) {
      watch(entry)
      // A write between its last look and the watch would wake nothing: looked at once more.
      nudge(entry)
    }
    quietQueue(entry).push(entry, now)
  }

  const goBusy = (entry: Followed, now: number) => {
    entry.emptyLooks = 0
    entry.foundAt = now
    entry.finds++
    if (entry.busy) {
      if (entry.watching && entry.finds >= UNWATCH_AFTER_LOOKS && now - entry.busySince >= UNWATCH_AFTER_MS) {
        entry.watching = false
        unwatch(entry)
      }
      return
    }
    entry.busy = true
    entry.busySince = now
    entry.finds = 0
    entry.quietAt = Number.NaN
    busy.add(entry)
  }

  const remove = (entry: Followed) => {
    entry.gone = true
    unwatch(entry)
    busy.delete(entry)
    dirty.delete(entry)
  }

  const add = (follower: FileFollower, now: number): Followed => {
    const entry: Followed = {
      follower,
      watcher: undefined,
      watchedIno: -1,
      watching: true,
      busy: false,
      busySince: now,
      foundAt: now,
      finds: 0,
      lookedAt: Number.NEGATIVE_INFINITY,
      emptyLooks: 0,
      quietAt: Number.NaN,
      dirty: false,
      gone: false
    }
    watch(entry)
    goBusy(entry, now)
    // Looked at in the next round, not at the next poll.
    hot.push(entry)
    wake()
    return entry
  }

  let packets: Array<LogPacket.LogPacket> = objects()
  /** Files with more to read than their look took: looked at again straight away. */
  let hot: Array<Followed> = []

  /** Files whose look failed, to be dropped (with a warning) after the round. */
  const failures: Array<readonly [Followed, unknown]> = []

  /**
   * One look at a file, synchronously; true when enough packets wait to be handed over. `thorough`:
   * a look that finds nothing also takes an fstat (else only every STAT_EVERY empty looks of a
   * busy file), and `checkPath` a stat of the path.
   */
  const look = (entry: Followed, now: number, checkPath: boolean, thorough: boolean): boolean => {
    if (entry.gone) return false
    entry.dirty = false
    entry.lookedAt = now
    const before = entry.follower.reader.offset
    let result: LookResult
    try {
      result = entry.follower.look(now, BURST, packets, checkPath, thorough || entry.emptyLooks % STAT_EVERY === STAT_EVERY - 1)
    } catch (error) {
      remove(entry)
      failures.push([entry, error])
      return packets.length >= BATCH
    }
    if (result === "done") {
      remove(entry)
      options.done(entry)
    } else if (result === "more") {
      goBusy(entry, now)
      hot.push(entry)
    } else if (entry.follower.reader.offset !== before || entry.follower.unsettled) {
      goBusy(entry, now)
    } else if (entry.busy) {
      entry.emptyLooks++
      // (A file with a line or an event being gathered stays busy: its timeout is looked for.)
      if (now - entry.foundAt >= QUIET_AFTER_MS && entry.emptyLooks >= STAT_EVERY && !entry.follower.reader.pending) goQuiet(entry, now)
    } else {
      quietQueue(entry).push(entry, now)
    }
    const live = entry.follower.live
    if (entry.watching && live !== undefined && live.identity.ino !== entry.watchedIno && !entry.gone) watch(entry)
    return packets.length >= BATCH
  }

  const handOver = Effect.suspend(() => {
    const batch = packets
    packets = objects()
    return batch.length === 0 ? Effect.void : options.offer(batch)
  })

  /** When the busy files were last polled together: they are due again `pollInterval` after. */
  let polledAt = Number.NEGATIVE_INFINITY

  /**
   * The files the round under way looks at, in order, how (HOT, BUSY, CHANGED), how many, and the
   * next one. (The arrays are kept from round to round, 20 a second: no allocation per round.)
   */
  const todo: Array<Followed | undefined> = []
  const how: Array<number> = []
  let planned = 0
  let next = 0
  let roundAt = 0

  const addTodo = (entry: Followed, kind: number) => {
    todo[planned] = entry
    how[planned++] = kind
  }
  const addBusy = (entry: Followed) => addTodo(entry, BUSY)
  const addChanged = (entry: Followed) => addTodo(entry, CHANGED)

  /** A round: the hot files, the busy ones when due, the dirty ones, the quiet ones due. */
  const plan = (now: number) => {
    roundAt = now
    planned = 0
    next = 0
    if (hot.length > 0) {
      for (let i = 0; i < hot.length; i++) addTodo(hot[i]!, HOT)
      hot = []
    }
    // The busy files, together, every `pollInterval` (a write to one still watched has it looked
    // at sooner, as a changed file). (Timers fire to the millisecond, the clock may read one less.)
    if (busy.size > 0 && now + 2 >= polledAt + pollMs) {
      polledAt = now
      busy.forEach(addBusy)
    }
    if (dirty.size > 0) {
      dirty.forEach(addChanged)
      dirty.clear()
    }
    for (let q = 0; q < quietQueues.length; q++) {
      const queue = quietQueues[q]!
      for (let entry = queue.due(now); entry !== undefined; entry = queue.due(now)) addTodo(entry, CHANGED)
    }
  }

  /** Looks at the round's files in turn: false when enough packets wait to be handed over first. */
  const collect = (): boolean => {
    while (next < planned) {
      const entry = todo[next]!
      const kind = how[next++]!
      // (A look may move a busy file out of `busy`, or have looked at it already, as hot.)
      if (kind === BUSY && (!entry.busy || entry.lookedAt === roundAt)) continue
      const full = kind === HOT
        ? look(entry, roundAt, false, false)
        : kind === BUSY
        ? look(entry, roundAt, entry.emptyLooks > 0 || entry.follower.unsettled, false)
        : look(entry, roundAt, true, true)
      if (full) return false
    }
    // (Files removed since are not kept alive by the list.)
    todo.fill(undefined, 0, planned)
    planned = 0
    next = 0
    return true
  }

  /** When the next round is due (ms from now; 0: at once). */
  const untilNext = (now: number): number => {
    if (hot.length > 0 || woken) return 0
    let until = busy.size > 0 ? polledAt + pollMs : Number.POSITIVE_INFINITY
    for (const queue of quietQueues) until = Math.min(until, queue.next())
    return Math.max(0, Math.min(until - now, WATCHED_QUIET_MS))
  }

  /**
   * Until a round has found something to hand over (or a failure to report). Rounds that find
   * nothing — most of them, when files are written less often than they are polled — run in the
   * timer, synchronously, and the fiber sleeps on: one timer, no fiber, no Effect per round.
   * (The time is the wall clock's here: this is the input's hottest loop.)
   */
  const nextFinds = Effect.callback<void>((resume) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    let immediate: ReturnType<typeof setImmediate> | undefined
    const cancel = () => {
      clearTimeout(timer)
      if (immediate !== undefined) clearImmediate(immediate)
      timer = undefined
      immediate = undefined
    }
    const tick = () => {
      cancel()
      woken = false
      let found: boolean
      try {
        plan(Date.now())
        found = !collect() || packets.length > 0 || failures.length > 0
      } catch (defect) {
        // (A bug: the fiber dies of it, as it would have in an Effect; not the process, in a timer.)
        return resume(Effect.die(defect))
      }
      if (!found) return arm()
      wake = () => {
        woken = true
      }
      resume(Effect.void)
    }
    const arm = () => {
      const wait = untilNext(Date.now())
      if (wait === 0) immediate = setImmediate(tick)
      else timer = setTimeout(tick, wait)
    }
    wake = () => {
      cancel()
      immediate = setImmediate(tick)
    }
    arm()
    return Effect.sync(() => {
      cancel()
      wake = () => {
        woken = true
      }
    })
  })

  /** Hands over what the round found, and goes on with it where it stopped to. */
  const finish = Effect.gen(function*() {
    while (true) {
      yield* handOver
      if (planned === 0 || collect()) break
    }
    yield* handOver
    for (const [entry, error] of failures.splice(0)) yield* options.failed(entry, error)
  })

  const run = Effect.forever(Effect.andThen(nextFinds, finish))

  const close = Effect.sync(() => {
    clearTimeout(nudgeTimer)
    for (const entry of busy) unwatch(entry)
    for (const queue of quietQueues) queue.each(unwatch)
    for (const entry of dirty) unwatch(entry)
  })

  return { add, remove, run, close, nudge }
})

/**
 * Quiet files in the order they are due, all looked at every `interval`: appended as they go
 * quiet (so in order), a place stale once the file was looked at since or became busy.
 */
class QuietQueue {
  private items: Array<{ readonly entry: Followed; readonly at: number }> = []
  private head = 0
  private readonly interval: number
  constructor(interval: number) {
    this.interval = interval
  }
  push(entry: Followed, now: number): void {
    entry.quietAt = now + this.interval
    this.items.push({ entry, at: entry.quietAt })
  }
  private live(i: number): boolean {
    const { at, entry } = this.items[i]!
    return !entry.busy && !entry.gone && entry.quietAt === at
  }
  /** The next file due by `now`, taken out of the queue. */
  due(now: number): Followed | undefined {
    while (this.head < this.items.length && this.items[this.head]!.at <= now) {
      const i = this.head++
      if (this.live(i)) return this.items[i]!.entry
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return undefined
  }
  /** When the next file is due. */
  next(): number {
    for (let i = this.head; i < this.items.length; i++) if (this.live(i)) return this.items[i]!.at
    return Number.POSITIVE_INFINITY
  }
  each(f: (entry: Followed) => void): void {
    for (let i = this.head; i < this.items.length; i++) f(this.items[i]!.entry)
  }
}
