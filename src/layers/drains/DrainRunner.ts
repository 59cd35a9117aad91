/**
 * What every drain has in common, whatever it sends to: the promises of ARCHITECTURE.md.
 *
 * - A bounded buffer: at most `bufferSize` packets, and the bytes the process's memory budget lets
 *   it hold (MemoryBudget.ts: a share of MEMORY_LIMIT common to all drains, with a guaranteed part
 *   each). `offer` never waits: while there is room a packet is kept until delivered; when the
 *   buffer is full the new packet is dropped and counted (`buffer_full`, or `memory` when the
 *   budget is what is full), so one slow or dead drain never stalls the router, the inputs, or
 *   other drains. (Packets of sources that keep their own data — container log files — are not
 *   dropped: the router parks them, see Receipt.ts, and `feed` brings them back when there is room.)
 * - Sticky lanes (Lanes.ts): one worker and one connection each; a source's packets always go
 *   through one lane, in order. A drain starts with one lane and doubles them (up to
 *   `maxWorkers`) while a lane keeps a backlog of two full batches. A new lane takes over half of
 *   its parent's sources, so it waits until the parent is done with everything it held at the
 *   split: delivered, for transports that say so per send (HTTP); for those that confirm later
 *   (plain TCP syslog), the parent asks its sender to confirm what it wrote (a graceful close,
 *   which ends once the receiver has read it all) before the new lane sends anything. Order
 *   survives scaling.
 * - Batches bounded by count and bytes. A worker sends what is there as soon as it can; with a
 *   `batchTimeout` it first waits up to that long for a batch to fill (for HTTP-like receivers);
 *   a TCP syslog worker sending without pause lets a small batch gather for up to a millisecond
 *   (COALESCE_MS), for fewer writes.
 * - Retries. A batch that fails with a retryable error is sent again, and again, with jittered
 *   exponential backoff (Backoff.ts: cut short by a connect probe while the receiver cannot be
 *   reached), before anything after it. A permanent failure drops the batch, counted by reason.
 * - Receipts. When a drain is done with a packet (delivered, or dropped for a counted reason), it
 *   settles the packet's receipt, if it has one (Receipt.ts).
 * - Closing flushes: the runner's scope waits up to `flushTimeout` (or what is left of the
 *   shutdown's deadline, StopDeadline.ts) for the lanes to be done, then counts what is left as
 *   dropped (`shutdown`); receipts of what is left are not settled, so files read it again on
 *   restart.
 *
 * The contract with the drain kinds (settings, senders, what a send reports) is DrainSink.ts;
 * lanes are Lanes.ts, the counts DrainStats.ts, those waiting for room RoomWaiters.ts.
 */
import { Clock, Deferred, Duration, Effect, FiberSet } from "effect"
import * as LogPacket from "../../domain/LogPacket.ts"
import type { Offered } from "../../domain/Receipt.ts"
import * as Log from "../Log.ts"
import { MemoryBudget } from "../MemoryBudget.ts"
import * as Backoff from "./Backoff.ts"
import type { DrainError } from "./DrainError.ts"
import { type DeliveryReport, type DrainHandle, DrainSettings, type DrainSink, defaultSettings, type Held, type LaterConfirmation, type Sender } from "./DrainSink.ts"
import * as DrainStats from "./DrainStats.ts"
import { Lane, laneOf } from "./Lanes.ts"
import { RoomWaiters } from "./RoomWaiters.ts"
import { StopDeadline } from "./StopDeadline.ts"

/**
 * A worker of a sink that coalesces (DrainSink.coalesce: syslog over TCP and TLS) sending batch
 * after batch — lines coming a few dozen per socket read, as syslog-ng's loggen sends them — waits
 * until COALESCE_MS after its last batch before taking one smaller than COALESCE_BYTES, so that a
 * few reads go out in one write: writes of ~15 KB batches were ~20 % of the relay's CPU under
 * loggen (13.5k writes for 1M lines; 2.4k with this). A worker idle for COALESCE_MS sends at
 * once: a trickle of lines is not delayed.
 */
const COALESCE_MS = 1
const COALESCE_BYTES = 48 * 1024

/**
 * A wait of wall-clock time, whatever the Effect clock says: coalescing writes is about the
 * system's time (a test's clock standing still must not hold batches back).
 */
const realSleep = (ms: number) =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

const floorPowerOfTwo = (n: number): number => 2 ** Math.floor(Math.log2(Math.max(1, n)))

/**
 * What a packet must find room for in the memory budget: its bytes; one for a packet with a
 * receipt, which is offered only when `hasRoom` said so (else parked), and never dropped for memory.
 */
const budgetBytes = (packet: LogPacket.LogPacket, bytes?: number) =>
  packet.receipt === undefined ? bytes ?? LogPacket.approximateBytes(packet) : 1

/** Settles the receipts of packets the drain of `endpoint` is done with. */
const settleAll = (packets: ReadonlyArray<LogPacket.LogPacket>, endpoint: string): void => {
  for (let i = 0; i < packets.length; i++) packets[i]!.receipt?.settle(endpoint)
}

/** Settles the receipts of what a sender held. */
const settleHeld = (what: Held, endpoint: string): void => {
  // (A run of a receipt's packets at once: a sender's batch holds a few runs of hundreds. Indexed,
  // not destructured: for-of and [a, b] = pair are the iterator protocol, real objects without
  // Turbofan; see DrainSink.held.)
  const receipts = what.receipts
  const counts = what.counts
  for (let r = 0; r < receipts.length; r++) receipts[r]!.settle(endpoint, counts[r]!)
}

/**
 * Runs a drain until its scope closes. `display` names it in logs and metric labels; `kind` is
 * its DrainUrl kind.
 */
export const make = Effect.fnUntraced(function*(options: {
  /** The drain's URL as routes name it: how receipts know it. */
  readonly endpoint?: string | undefined
  readonly display: string
  readonly kind: string
  readonly sink: DrainSink
}) {
  const settings: DrainSettings = { ...defaultSettings, ...options.sink.settings, ...(yield* DrainSettings) }
  const maxLanes = floorPowerOfTwo(Math.min(settings.maxWorkers, options.sink.maxWorkers ?? Number.POSITIVE_INFINITY))
  const { display, kind, sink } = options
  const coalesce = sink.coalesce === true
  const endpoint = options.endpoint ?? display
  const stopDeadline = yield* Effect.serviceOption(StopDeadline)
  const { rejected, stats } = yield* DrainStats.make(display, kind)
  // Added before the workers' finalizers, so it runs after them: the drain's bytes are given back last.
  const account = (yield* MemoryBudget).drains.join()
  yield* Effect.addFinalizer(() => Effect.sync(() => account.leave()))

  const lanes: Array<Lane> = [new Lane()]
  let closing = false
  /** Closed because no route uses it any more (not because logtrain stops). */
  let retired = false
  let lastScaleAt = Number.NEGATIVE_INFINITY
  let failingSince = 0

  /** Routers and feeds waiting for the depth to fall to a level. */
  const room = new RoomWaiters(() => stats.depth, () => closing)

  /**
   * `n` packets of `bytes` left the buffer (delivered, or written by a sender that confirms later:
   * it holds their bytes until confirmed, within a bound of its own).
   */
  const leftBuffer = (n: number, bytes: number) => {
    stats.depth -= n
    stats.bytes -= bytes
    account.give(bytes)
    if (room.size > 0) room.wake()
  }

  /** `packets` (`bytes`) of `lane` are done with: delivered (`sent` of them) or dropped, counted by the caller. */
  const done = (lane: Lane, packets: ReadonlyArray<LogPacket.LogPacket>, bytes: number, sent: number) => {
    stats.sent += sent
    settleAll(packets, endpoint)
    lane.completed(packets.length)
    leftBuffer(packets.length, bytes)
  }

  /**
   * What a sender that confirms later held has arrived. (It left the buffer when it was written:
   * the sender holds it until confirmed, within a bound of its own.)
   */
  const confirmed = (lane: Lane, what: Held) => {
    stats.sent += what.count
    settleHeld(what, endpoint)
    lane.completed(what.count)
  }

  const onFailure = (error: DrainError) =>
    Effect.suspend(() => {
      stats.errors++
      if (!stats.healthy) return Effect.void
      stats.healthy = false
      account.healthy = false
      // A router waiting for room with a file's packet parks it instead (see `busy`).
      room.wakeAll()
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        failingSince = now
        return Log.warn(
          error.retryable ? "drain failing; retrying with backoff" : "drain refused a batch; dropping it",
          { drain: display, error: error.message }
        )
      })
    })

  const recovered = Effect.suspend(() =>
    stats.healthy ? Effect.void : Effect.flatMap(Clock.currentTimeMillis, (now) => {
      stats.healthy = true
      account.healthy = true
      return Log.info("drain recovered", { drain: display, failedForMs: now - failingSince })
    })
  )

  /** A send that succeeded: delivered, but for what the receiver refused item by item. */
  const delivered = (lane: Lane, batch: ReadonlyArray<LogPacket.LogPacket>, bytes: number, report: DeliveryReport | void) =>
    Effect.suspend(() => {
      let refused = 0
      const counted: Array<Effect.Effect<void>> = []
      if (report !== undefined) {
        for (const [reason, count] of report.rejected) {
          refused += count
          counted.push(rejected(reason, count, report.example))
        }
      }
      done(lane, batch, bytes, batch.length - refused)
      return Effect.all(counted, { discard: true })
    })

  /** A batch given up on for good (refused, or a kind that cannot run): counted by reason. */
  const givenUp = (lane: Lane, batch: ReadonlyArray<LogPacket.LogPacket>, bytes: number, error: DrainError) =>
    Effect.suspend(() => {
      const sent = Math.min(error.delivered ?? 0, batch.length)
      done(lane, batch, bytes, sent)
      const lost = batch.length - sent
      if (error.reason === "Unsupported") {
        stats.dropped.unsupported += lost
        return Effect.void
      }
      return rejected(error.code ?? error.reason, lost, error.message)
    })

  const retryWait = Backoff.waits(settings, sink.probe)

  /** Sends a batch until it is delivered or given up on. */
  const deliver = (lane: Lane, sender: Sender, batch: ReadonlyArray<LogPacket.LogPacket>, bytes: number) =>
    Effect.suspend(function attempt(tries = 0): Effect.Effect<void> {
      return Effect.matchEffect(sender.send(batch), {
        onSuccess: (report) =>
          Effect.andThen(
            recovered,
            sender.confirmsLater === undefined
              ? delivered(lane, batch, bytes, report)
              : Effect.sync(() => leftBuffer(batch.length, bytes))
          ),
        onFailure: (error) =>
          Effect.andThen(onFailure(error), () => {
            if (!error.retryable) return givenUp(lane, batch, bytes, error)
            return Effect.andThen(retryWait(tries, error), () => {
              stats.retries++
              return attempt(tries + 1)
            })
          })
      })
    })

  /** Confirms what a confirm-later sender wrote, retrying as sends do. */
  const settle = (later: LaterConfirmation) =>
    Effect.suspend(function attempt(tries = 0): Effect.Effect<void> {
      if (later.unconfirmed() === 0) return Effect.void
      return Effect.catch(later.settle, (error) =>
        Effect.andThen(onFailure(error), () =>
          Effect.andThen(retryWait(tries, error), () => {
            stats.retries++
            return attempt(tries + 1)
          })))
    })

  /** Until the lane has packets, the drain closes, or the lane is asked to settle. */
  const waitForWork = (lane: Lane, count: number) =>
    Effect.callback<void>((resume) => {
      if (lane.length >= count || closing || (lane.settleAfter !== undefined && lane.settleAfter <= 0)) {
        return resume(Effect.void)
      }
      lane.wakeAt = count
      lane.wake = () => resume(Effect.void)
      return Effect.sync(() => {
        lane.wake = undefined
      })
    })

  const fibers = yield* FiberSet.make<void>()

  const work = (lane: Lane): Effect.Effect<void> =>
    Effect.scoped(Effect.gen(function*() {
      const sender = yield* sink.sender
      const later = sender.confirmsLater
      lane.held = later?.held
      later?.listen({
        confirmed: (what) => confirmed(lane, what),
        resent: (n) => {
          stats.resent += n
        },
        settleSoon: () => {
          lane.settleAfter = 0
          lane.wakeSoon()
        }
      })
      if (lane.gate !== undefined) {
        yield* Deferred.await(lane.gate)
        lane.gate = undefined
      }
      while (true) {
        if (lane.settleAfter !== undefined && lane.settleAfter <= 0) {
          lane.settleAfter = undefined
          if (later !== undefined) yield* settle(later)
          continue
        }
        if (lane.length === 0) {
          if (closing) {
            // What was written must be confirmed before the drain counts it as sent.
            if (later !== undefined) yield* settle(later)
            return
          }
          yield* waitForWork(lane, 1)
          continue
        }
        const full = lane.length >= settings.batchSize || lane.bytes >= settings.batchBytes
        if (!closing && !full && Duration.isGreaterThan(settings.batchTimeout, Duration.zero)) {
          yield* Effect.raceFirst(Effect.sleep(settings.batchTimeout), waitForWork(lane, settings.batchSize))
        } else if (coalesce && !closing && lane.bytes < COALESCE_BYTES) {
          // Sending without stopping: a small batch waits until COALESCE_MS after the last one.
          const since = Date.now() - lane.takenAt
          if (since < COALESCE_MS) yield* realSleep(COALESCE_MS - since)
        }
        lane.takenAt = Date.now()
        const batch = lane.take(settings.batchSize, settings.batchBytes)
        lane.current = batch
        yield* deliver(lane, sender, batch, lane.takenBytes)
        lane.current = undefined
        if (lane.settleAfter !== undefined) lane.settleAfter -= batch.length
        if (lane.length >= 2 * settings.batchSize && lanes.length < maxLanes && !closing) yield* split(lane)
      }
    })).pipe(
      // A defect (a bug, e.g. a sender that cannot be made) ends the worker: said loudly here; its
      // lane's packets are counted as dropped when the drain closes (below), not lost unseen.
      Effect.catchDefect((defect) => {
        stats.healthy = false
        account.healthy = false
        return Log.error("drain worker stopped by a defect; what it holds is dropped when the drain closes", {
          drain: display,
          defect: String(defect)
        })
      })
    )

  /**
   * Doubles the lanes, if that shares out the backlog of `behind`; each new lane waits for its
   * parent to be done with what it holds.
   */
  const split = (behind: Lane): Effect.Effect<void> => Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    if (now - lastScaleAt < 1000) return
    lastScaleAt = now
    const n = lanes.length
    if (!behind.divides(n)) return
    for (let j = 0; j < n; j++) {
      const child = new Lane()
      lanes[j]!.holdBack(child)
      lanes.push(child)
      yield* FiberSet.run(fibers)(work(child))
    }
    stats.lanes = lanes.length
    yield* Log.info("drain under pressure; more workers", { drain: display, workers: lanes.length })
  })

  /** How long closing may wait: the flush timeout, or what is left of the stop's deadline. */
  const flushTime = Effect.map(Clock.currentTimeMillis, (now) => {
    const flush = Duration.toMillis(settings.flushTimeout)
    const startedAt = stopDeadline._tag === "Some" ? stopDeadline.value.startedAt() : undefined
    return Duration.millis(startedAt === undefined ? flush : Math.max(0, startedAt + flush - now))
  })

  // Added after the FiberSet, so it runs before the workers are interrupted: flush, then stop.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      closing = true
      room.wake()
      account.pool.recheck()
      for (const lane of lanes) lane.wakeSoon()
      const timeout = yield* flushTime
      const flushed = yield* FiberSet.awaitEmpty(fibers).pipe(Effect.timeoutOption(timeout))
      const timedOut = flushed._tag === "None"
      if (timedOut) yield* FiberSet.clear(fibers)
      // What is left: held past the flush timeout, or in a lane whose worker a defect ended (see `work`).
      // A drain retired while logtrain runs (its route is gone): its packets' sources need not keep
      // them for it any more, their receipts are settled. (On a stop they are not: files read them
      // again after it.)
      let left = 0
      for (const lane of lanes) {
        const queued = lane.clear()
        left += queued.length + lane.pending
        if (!retired) continue
        settleAll(queued, endpoint)
        if (lane.current !== undefined) settleAll(lane.current, endpoint)
        if (lane.held !== undefined) for (const what of lane.held()) settleHeld(what, endpoint)
      }
      stats.bytes = 0
      account.leave()
      if (timedOut || left > 0) {
        stats.dropped.shutdown += left
        stats.depth = 0
        yield* timedOut
          ? Log.warn("drain closed before it could deliver everything", {
            drain: display,
            dropped: left,
            flushTimeout: Duration.format(timeout)
          })
          : Log.warn("drain closed with packets no worker could send", { drain: display, dropped: left })
      }
    })
  )

  yield* FiberSet.run(fibers)(work(lanes[0]!))

  /**
   * Takes a packet if the buffer has room for it. A packet with a receipt was offered because
   * `hasRoom` said so (else the router parks it): it is taken even if its bytes overshoot the
   * budget's share a little, never dropped for memory.
   */
  const offer = (packet: LogPacket.LogPacket): boolean => {
    stats.received++
    if (stats.depth >= settings.bufferSize || closing) {
      stats.dropped[closing ? "shutdown" : "buffer_full"]++
      return false
    }
    const bytes = LogPacket.approximateBytes(packet)
    if (!account.fits(budgetBytes(packet, bytes))) {
      stats.dropped.memory++
      return false
    }
    account.take(bytes)
    stats.bytes += bytes
    stats.depth++
    laneOf(lanes, packet).push(packet, bytes)
    return true
  }
  const hasRoom = (packet?: LogPacket.LogPacket) =>
    stats.depth < settings.bufferSize && !closing && account.fits(packet === undefined ? 1 : budgetBytes(packet))
  /** A feed waits for half the buffer to be free, so that a backlog comes back in large gulps. */
  const feedLevel = Math.floor(settings.bufferSize / 2)
  /**
   * How much of the buffer files' packets fill when they wait for room (DRAIN_WHEN_FULL=block):
   * half. A file needs no deep buffer in memory (it is one), and each packet held longer is one
   * more the garbage collector moves to the old generation: filled to the brim, the file tail
   * took ~20 % more CPU per line (npm run bench -- --only files).
   */
  const filesLevel = Math.max(1, feedLevel)
  /**
   * How much of the buffer network packets fill when they wait for a drain that is sending
   * (DRAIN_WHEN_FULL=block): half, as files, but at least three batches, since a lane splits only
   * once it still holds two batches after taking one (a batch in flight counts in the depth): at
   * half, a small buffer (DRAIN_BUFFER_SIZE=200, DRAIN_BATCH_SIZE=50) never split past two lanes.
   * A sender is slowed as much as before (the router waits either way); the drain holds fewer
   * packets the garbage collector must move while they wait (npm run bench -- --only relay).
   */
  const networkLevel = Math.min(settings.bufferSize, Math.max(filesLevel, 3 * settings.batchSize))
  const busyLevel = (packet: LogPacket.LogPacket) => (packet.receipt === undefined ? networkLevel : filesLevel)

  /**
   * Waits until the buffer holds at most `level` packets and the budget lets it take `bytes()`
   * more; false if the drain is closing.
   */
  const whenRoomFor = (level: number, bytes: () => number): Effect.Effect<boolean> =>
    Effect.flatMap(room.untilAtMost(level), (open) => {
      if (!open || closing) return Effect.succeed(false)
      if (account.fits(bytes())) return Effect.succeed(true)
      return Effect.andThen(account.pool.until(() => closing || account.fits(bytes())), whenRoomFor(level, bytes))
    })

  const handle: DrainHandle = {
    display,
    kind,
    stats,
    hasRoom,
    busy: (packet) => stats.depth >= busyLevel(packet) && stats.healthy && !closing && account.fits(budgetBytes(packet)),
    untilNotBusy: (packet) => Effect.asVoid(room.untilAtMost(busyLevel(packet) - 1)),
    whenRoom: (packet) => {
      const bytes = budgetBytes(packet)
      return whenRoomFor(settings.bufferSize - 1, () => bytes)
    },
    retire: () => {
      retired = true
    },
    feed: (stillRouted) => ({
      // Room for a good share of the budget too: half its guarantee.
      whenRoom: Effect.map(whenRoomFor(feedLevel, () => account.pool.guarantee() / 2), (room) => room && stillRouted()),
      offer: (packet): Offered => {
        if (closing || !stillRouted()) return "gone"
        if (!hasRoom(packet)) return "full"
        offer(packet)
        return "taken"
      },
      dropped: (n, reason) => {
        stats.dropped[reason] += n
      }
    }),
    offer
  }
  return handle
})
