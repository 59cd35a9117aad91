/**
 * What every drain has in common, whatever it sends to: the promises of ARCHITECTURE.md.
 *
 * - A bounded buffer. `offer` never waits: while there is room a packet is kept until delivered;
 *   when the buffer is full the new packet is dropped and counted (`buffer_full`), so one slow or
 *   dead drain never stalls the router, the inputs, or other drains.
 * - Sticky lanes. The buffer is split into lanes, one worker each; a packet's lane is chosen by a
 *   hash of hostname+tag, so each source's packets are sent in order. A drain starts with one lane
 *   and doubles them (up to `maxWorkers`) while a lane keeps a backlog of two full batches. A new
 *   lane takes over half of its parent's sources, so it waits until the parent has sent everything
 *   it held at the split: order survives scaling.
 * - Batches bounded by count and bytes. A worker sends what is there as soon as it can; with a
 *   `batchTimeout` it first waits up to that long for a batch to fill (for HTTP-like receivers).
 * - Retries. A batch that fails with a retryable error is sent again, and again, with jittered
 *   exponential backoff capped at `retryMaxDelay`, before anything after it. A permanent failure
 *   drops the batch, counted by reason.
 * - Closing flushes: the runner's scope waits up to `flushTimeout` for the lanes to empty, then
 *   counts what is left as dropped (`shutdown`).
 */
import { Clock, Context, Deferred, Duration, Effect, FiberSet, Schedule, Scope } from "effect"
import * as LogPacket from "../../domain/LogPacket.ts"
import * as Telemetry from "../Telemetry.ts"
import type { DrainError } from "./DrainError.ts"
import * as Log from "../Log.ts"

export interface DrainSettings {
  /** Packets a drain holds before it drops new ones. */
  readonly bufferSize: number
  /** Most packets in one batch. */
  readonly batchSize: number
  /** Most bytes (approximately) in one batch. */
  readonly batchBytes: number
  /** How long a worker waits for a batch to fill; zero sends whatever is there at once. */
  readonly batchTimeout: Duration.Duration
  /** Most lanes (and workers, and connections) per drain; rounded down to a power of two. */
  readonly maxWorkers: number
  readonly retryBaseDelay: Duration.Duration
  readonly retryMaxDelay: Duration.Duration
  /** How long closing waits for buffered packets to be delivered. */
  readonly flushTimeout: Duration.Duration
}

export const defaultSettings: DrainSettings = {
  bufferSize: 10_000,
  batchSize: 2000,
  batchBytes: 1024 * 1024,
  batchTimeout: Duration.zero,
  maxWorkers: 4,
  retryBaseDelay: Duration.millis(250),
  retryMaxDelay: Duration.seconds(30),
  flushTimeout: Duration.seconds(20)
}

/**
 * The drain settings the operator configured (DRAIN_*). They win over a kind's own defaults, which
 * win over `defaultSettings`.
 */
export const DrainSettings = Context.Reference<Partial<DrainSettings>>("logtrain/drains/DrainSettings", {
  defaultValue: () => ({})
})

/**
 * What a send says when only part of a batch could be delivered: the items the receiver refused
 * for good, by reason (e.g. an Elasticsearch `mapper_parsing_exception`). The others were delivered.
 */
export interface DeliveryReport {
  readonly rejected: ReadonlyMap<string, number>
  /** What the receiver said about one of them, for the log. */
  readonly example?: string | undefined
}

/** Delivers batches over one connection (or whatever the kind uses). One per worker. */
export interface Sender {
  /**
   * Sends one batch, in order. Fails with a DrainError that says whether retrying can help; a
   * retried batch is the same array, so a kind can remember what of it already went through.
   */
  readonly send: (batch: ReadonlyArray<LogPacket.LogPacket>) => Effect.Effect<DeliveryReport | void, DrainError>
}

/** What a drain kind gives the runner. */
export interface DrainSink {
  /** Opens a sender for one worker; it keeps its connection (opened on first send) for the scope's life. */
  readonly sender: Effect.Effect<Sender, never, Scope.Scope>
  /** This kind's defaults, where they differ from `defaultSettings` (configured values still win). */
  readonly settings?: Partial<DrainSettings> | undefined
  /** Most workers this kind can use, whatever is configured (1 where order matters and sends cannot overlap). */
  readonly maxWorkers?: number | undefined
}

/** Why packets are dropped; each has a series from the start, so dashboards see zeros, not gaps. */
export const dropReasons = ["buffer_full", "rejected", "unsupported", "shutdown"] as const
export type DropReason = typeof dropReasons[number]

export interface DrainStats {
  received: number
  sent: number
  /** Failed send attempts. */
  errors: number
  /** Send attempts that were retries of a failed batch. */
  retries: number
  /** Packets buffered, in flight included. */
  depth: number
  lanes: number
  healthy: boolean
  readonly dropped: Record<DropReason, number>
}

export interface DrainHandle {
  /** The drain's URL, redacted. */
  readonly display: string
  readonly kind: string
  /** Takes a packet for delivery. Never waits; false when the buffer is full (the packet is dropped and counted). */
  readonly offer: (packet: LogPacket.LogPacket) => boolean
  /** Whether `offer` would take a packet now. */
  readonly hasRoom: () => boolean
  /**
   * Waits until the buffer has room; false if the drain is closing (it never will). For routers
   * that wait rather than drop (DRAIN_WHEN_FULL=block).
   */
  readonly whenRoom: Effect.Effect<boolean>
  readonly stats: DrainStats
}

/** One worker's share of the buffer: a FIFO with a byte count and a way to wake its worker. */
class Lane {
  private items: Array<LogPacket.LogPacket | undefined> = []
  private head = 0
  bytes = 0
  /** Wakes the worker once the lane holds `wakeAt` packets. */
  wakeAt = 1
  wake: (() => void) | undefined = undefined
  /** Set while this lane must wait for its parent to send what it held when the lane was split off. */
  gate: Deferred.Deferred<void> | undefined = undefined
  inFlight = 0
  /** Children waiting for this lane to complete `remaining` more packets. */
  readonly releases: Array<{ remaining: number; readonly gate: Deferred.Deferred<void> }> = []

  get length(): number {
    return this.items.length - this.head
  }

  push(packet: LogPacket.LogPacket, bytes: number): void {
    this.items.push(packet)
    this.bytes += bytes
    if (this.wake !== undefined && this.items.length - this.head >= this.wakeAt) {
      // Resuming a fiber runs it right here, inside the router's loop over a chunk; waking it in a
      // microtask lets the whole chunk land first, so it is sent as one batch, not one packet and
      // then the rest.
      const wake = this.wake
      this.wake = undefined
      queueMicrotask(wake)
    }
  }

  take(maxCount: number, maxBytes: number): Array<LogPacket.LogPacket> {
    const batch: Array<LogPacket.LogPacket> = []
    let bytes = 0
    while (this.head < this.items.length && batch.length < maxCount) {
      const packet = this.items[this.head]!
      const size = LogPacket.approximateBytes(packet)
      if (batch.length > 0 && bytes + size > maxBytes) break
      batch.push(packet)
      this.items[this.head++] = undefined
      bytes += size
    }
    this.bytes -= bytes
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return batch
  }

  /** Everything still queued, for counting what a shutdown loses. */
  clear(): number {
    const n = this.length
    this.items = []
    this.head = 0
    this.bytes = 0
    return n
  }

  /** Records `n` packets done (sent or dropped) and opens the gates of children now free to go. */
  completed(n: number): void {
    for (let i = this.releases.length - 1; i >= 0; i--) {
      const release = this.releases[i]!
      release.remaining -= n
      if (release.remaining <= 0) {
        Deferred.doneUnsafe(release.gate, Effect.void)
        this.releases.splice(i, 1)
      }
    }
  }
}

/** FNV-1a over hostname and tag: which lane a source's packets go to. */
const sourceHash = (packet: LogPacket.LogPacket): number => {
  let h = 0x811c9dc5
  const { hostname, tag } = packet
  for (let i = 0; i < hostname.length; i++) h = Math.imul(h ^ hostname.charCodeAt(i), 0x01000193)
  h = Math.imul(h ^ 0x1f, 0x01000193)
  for (let i = 0; i < tag.length; i++) h = Math.imul(h ^ tag.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** Rejection reasons get their own series up to this many per drain (a flood of distinct reasons stays counted in the total). */
const MAX_REJECTION_REASONS = 32

/** How often drops are logged (they are counted at once). */
const DROP_REPORT_INTERVAL = Duration.seconds(10)

const floorPowerOfTwo = (n: number): number => 2 ** Math.floor(Math.log2(Math.max(1, n)))

/**
 * Runs a drain until its scope closes. `display` names it in logs and metric labels; `kind` is
 * its DrainUrl kind.
 */
export const make = Effect.fnUntraced(function*(options: {
  readonly display: string
  readonly kind: string
  readonly sink: DrainSink
}) {
  const settings: DrainSettings = { ...defaultSettings, ...options.sink.settings, ...(yield* DrainSettings) }
  const maxLanes = floorPowerOfTwo(Math.min(settings.maxWorkers, options.sink.maxWorkers ?? Number.POSITIVE_INFINITY))
  const { display, kind, sink } = options
  const stats: DrainStats = {
    received: 0,
    sent: 0,
    errors: 0,
    retries: 0,
    depth: 0,
    lanes: 1,
    healthy: true,
    dropped: { buffer_full: 0, rejected: 0, unsupported: 0, shutdown: 0 }
  }
  const labels = { drain: display, kind }
  const scope = yield* Effect.scope
  /** Items refused for good, by the receiver's reason; a series appears with its first reason. */
  const rejectedBy = new Map<string, number>()
  /** The receiver's words about the latest refusal, for the periodic log line. */
  let lastRefusal: string | undefined
  const countRejected = (reason: string, n: number) =>
    Effect.suspend(() => {
      const before = rejectedBy.get(reason)
      rejectedBy.set(reason, (before ?? 0) + n)
      if (before !== undefined || rejectedBy.size > MAX_REJECTION_REASONS) return Effect.void
      return Telemetry.counter(
        "logtrain_drain_rejected_total",
        "Packets the receiver refused for good, by its reason.",
        { ...labels, reason },
        () => rejectedBy.get(reason) ?? 0
      ).pipe(Scope.provide(scope))
    })
  yield* Effect.all([
    Telemetry.counter("logtrain_drain_received_total", "Packets routed to the drain.", labels, () => stats.received),
    Telemetry.counter("logtrain_drain_sent_total", "Packets the drain delivered.", labels, () => stats.sent),
    Telemetry.counter("logtrain_drain_errors_total", "Failed send attempts.", labels, () => stats.errors),
    Telemetry.counter("logtrain_drain_retries_total", "Send attempts that retried a failed batch.", labels, () =>
      stats.retries),
    Telemetry.gauge("logtrain_drain_buffer_depth", "Packets buffered, in flight included.", labels, () =>
      stats.depth),
    Telemetry.gauge("logtrain_drain_workers", "Lanes (workers, connections) in use.", labels, () => stats.lanes),
    Telemetry.gauge("logtrain_drain_up", "1 while the last send succeeded, 0 while failing.", labels, () =>
      stats.healthy ? 1 : 0),
    ...dropReasons.map((reason) =>
      Telemetry.counter("logtrain_drain_dropped_total", "Packets the drain gave up on, by reason.", {
        ...labels,
        reason
      }, () => stats.dropped[reason])
    )
  ], { discard: true })

  const lanes: Array<Lane> = [new Lane()]
  let closing = false
  let lastScaleAt = Number.NEGATIVE_INFINITY
  let failingSince = 0

  const retryPolicy = Schedule.min([
    Schedule.exponential(settings.retryBaseDelay).pipe(Schedule.jittered),
    Schedule.spaced(settings.retryMaxDelay)
  ]).pipe(
    Schedule.setInputType<DrainError>(),
    Schedule.while(({ input }) => input.retryable),
    Schedule.tap(() => Effect.sync(() => stats.retries++))
  )

  const onFailure = (error: DrainError) =>
    Effect.suspend(() => {
      stats.errors++
      if (!stats.healthy) return Effect.void
      stats.healthy = false
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        failingSince = now
        return Log.warn(
          error.retryable ? "drain failing; retrying with backoff" : "drain refused a batch; dropping it",
          { drain: display, error: error.message }
        )
      })
    })

  const onSuccess = (n: number, report: DeliveryReport | void) =>
    Effect.suspend(() => {
      let refused = 0
      const counted: Array<Effect.Effect<void>> = []
      if (report !== undefined) {
        if (report.example !== undefined) lastRefusal = report.example
        for (const [reason, count] of report.rejected) {
          refused += count
          counted.push(countRejected(reason, count))
        }
      }
      stats.sent += n - refused
      stats.dropped.rejected += refused
      const recovered = stats.healthy ? Effect.void : Effect.flatMap(Clock.currentTimeMillis, (now) => {
        stats.healthy = true
        return Log.info("drain recovered", { drain: display, failedForMs: now - failingSince })
      })
      return Effect.andThen(Effect.all(counted, { discard: true }), recovered)
    })

  const deliver = (sender: Sender, batch: ReadonlyArray<LogPacket.LogPacket>) =>
    sender.send(batch).pipe(
      Effect.tapError(onFailure),
      Effect.retry(retryPolicy),
      Effect.matchEffect({
        onSuccess: (report) => onSuccess(batch.length, report),
        onFailure: (error) =>
          Effect.suspend(() => {
            const delivered = Math.min(error.delivered ?? 0, batch.length)
            stats.sent += delivered
            const lost = batch.length - delivered
            if (error.reason === "Unsupported") {
              stats.dropped.unsupported += lost
              return Effect.void
            }
            stats.dropped.rejected += lost
            lastRefusal = error.message
            return countRejected(error.code ?? error.reason, lost)
          })
      })
    )

  /** Waits until the lane holds `count` packets, or the drain is closing. */
  const waitFor = (lane: Lane, count: number) =>
    Effect.callback<void>((resume) => {
      if (lane.length >= count || closing) return resume(Effect.void)
      lane.wakeAt = count
      lane.wake = () => resume(Effect.void)
      return Effect.sync(() => {
        lane.wake = undefined
      })
    })

  const fibers = yield* FiberSet.make<void>()

  /** Routers waiting for room (DRAIN_WHEN_FULL=block). */
  const roomWaiters: Array<() => void> = []
  const wakeRoomWaiters = () => {
    for (const wake of roomWaiters.splice(0)) wake()
  }

  const work = (lane: Lane): Effect.Effect<void> =>
    Effect.scoped(Effect.gen(function*() {
      const sender = yield* sink.sender
      if (lane.gate !== undefined) {
        yield* Deferred.await(lane.gate)
        lane.gate = undefined
      }
      while (true) {
        yield* waitFor(lane, 1)
        if (lane.length === 0) return // closing, and nothing left
        const full = lane.length >= settings.batchSize || lane.bytes >= settings.batchBytes
        if (!closing && !full && Duration.isGreaterThan(settings.batchTimeout, Duration.zero)) {
          yield* Effect.raceFirst(Effect.sleep(settings.batchTimeout), waitFor(lane, settings.batchSize))
        }
        const batch = lane.take(settings.batchSize, settings.batchBytes)
        lane.inFlight = batch.length
        yield* deliver(sender, batch)
        lane.inFlight = 0
        stats.depth -= batch.length
        if (roomWaiters.length > 0 && stats.depth < settings.bufferSize) wakeRoomWaiters()
        lane.completed(batch.length)
        if (lane.length >= 2 * settings.batchSize && lanes.length < maxLanes && !closing) yield* split
      }
    })).pipe(
      // A defect (a bug, e.g. a sender that cannot be made) ends the worker: said loudly here; its
      // lane's packets are counted as dropped when the drain closes (below), not lost unseen.
      Effect.catchDefect((defect) => {
        stats.healthy = false
        return Log.error("drain worker stopped by a defect; what it holds is dropped when the drain closes", {
          drain: display,
          defect: String(defect)
        })
      })
    )

  /** Doubles the lanes; each new lane waits for its parent's backlog to be sent. */
  const split: Effect.Effect<void> = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    if (now - lastScaleAt < 1000) return
    lastScaleAt = now
    const n = lanes.length
    for (let j = 0; j < n; j++) {
      const parent = lanes[j]!
      const child = new Lane()
      const backlog = parent.length + parent.inFlight
      if (backlog > 0) {
        child.gate = Deferred.makeUnsafe<void>()
        parent.releases.push({ remaining: backlog, gate: child.gate })
      }
      lanes.push(child)
      yield* FiberSet.run(fibers)(work(child))
    }
    stats.lanes = lanes.length
    yield* Log.info("drain under pressure; more workers", { drain: display, workers: lanes.length })
  })

  // Added after the FiberSet, so it runs before the workers are interrupted: flush, then stop.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      closing = true
      wakeRoomWaiters()
      for (const lane of lanes) lane.wake?.()
      const flushed = yield* FiberSet.awaitEmpty(fibers).pipe(Effect.timeoutOption(settings.flushTimeout))
      const timedOut = flushed._tag === "None"
      if (timedOut) yield* FiberSet.clear(fibers)
      // What is left: held past the flush timeout, or in a lane whose worker a defect ended (see `work`).
      let left = 0
      for (const lane of lanes) left += lane.clear() + lane.inFlight
      if (timedOut || left > 0) {
        stats.dropped.shutdown += left
        stats.depth = 0
        yield* timedOut
          ? Log.warn("drain closed before it could deliver everything", {
            drain: display,
            dropped: left,
            flushTimeout: Duration.format(settings.flushTimeout)
          })
          : Log.warn("drain closed with packets no worker could send", { drain: display, dropped: left })
      }
    })
  )

  yield* FiberSet.run(fibers)(work(lanes[0]!))

  // Drops happen in `offer` (which must not log) and per batch; summarize them from here, at most
  // once per interval, so a drain dropping a flood writes one line, not a flood.
  const reported: Record<DropReason, number> = { ...stats.dropped }
  yield* Effect.suspend(() => {
    const dropped: Partial<Record<DropReason, number>> = {}
    let any = false
    for (const reason of dropReasons) {
      const n = stats.dropped[reason] - reported[reason]
      if (n > 0) {
        dropped[reason] = n
        any = true
      }
      reported[reason] = stats.dropped[reason]
    }
    if (!any) return Effect.void
    const example = dropped.rejected !== undefined ? lastRefusal : undefined
    return Log.warn("drain dropped packets", { drain: display, ...dropped, ...(example === undefined ? {} : { refused: example }) })
  }).pipe(Effect.repeat(Schedule.spaced(DROP_REPORT_INTERVAL)), Effect.forkScoped)

  const handle: DrainHandle = {
    display,
    kind,
    stats,
    hasRoom: () => stats.depth < settings.bufferSize && !closing,
    whenRoom: Effect.callback<boolean>((resume) => {
      if (stats.depth < settings.bufferSize || closing) return resume(Effect.succeed(!closing))
      const wake = () => resume(Effect.succeed(!closing))
      roomWaiters.push(wake)
      return Effect.sync(() => {
        const at = roomWaiters.indexOf(wake)
        if (at >= 0) roomWaiters.splice(at, 1)
      })
    }),
    offer: (packet) => {
      stats.received++
      if (stats.depth >= settings.bufferSize || closing) {
        stats.dropped[closing ? "shutdown" : "buffer_full"]++
        return false
      }
      stats.depth++
      const lane = lanes.length === 1 ? lanes[0]! : lanes[sourceHash(packet) & (lanes.length - 1)]!
      lane.push(packet, LogPacket.approximateBytes(packet))
      return true
    }
  }
  return handle
})
