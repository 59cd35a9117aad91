/**
 * What the drain runner (DrainRunner.ts) and the drain kinds agree on: the settings every drain
 * has, what a kind gives the runner (a DrainSink: senders, its defaults, a reachability probe),
 * what a send may report, how a sender that confirms later (plain TCP syslog) tells what arrived,
 * and the handle the router offers packets to.
 */
import { Context, Duration, type Effect, type Scope } from "effect"
import type * as LogPacket from "../../domain/LogPacket.ts"
import type { Feed, Receipt } from "../../domain/Receipt.ts"
import type { DrainError } from "./DrainError.ts"
import type * as DrainStats from "./DrainStats.ts"

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
  /** How long a connection may take no byte at all before it is given up on (a receiver that stopped reading). */
  readonly stallTimeout: Duration.Duration
}

export const defaultSettings: DrainSettings = {
  bufferSize: 10_000,
  batchSize: 2000,
  batchBytes: 1024 * 1024,
  batchTimeout: Duration.zero,
  maxWorkers: 4,
  retryBaseDelay: Duration.millis(250),
  retryMaxDelay: Duration.seconds(30),
  flushTimeout: Duration.seconds(20),
  stallTimeout: Duration.minutes(2)
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

/**
 * Packets a sender holds until they are confirmed: how many, and the receipts they carry (runs of
 * one receipt; most packets have none). Not the packets themselves: holding megabytes of small
 * objects for a while would make every garbage collection copy them.
 */
export interface Held {
  readonly count: number
  /** The runs: each one's receipt, and how many packets of it (side by side: no pair object a run). */
  readonly receipts: ReadonlyArray<Receipt>
  readonly counts: ReadonlyArray<number>
}

/** What `packets` hold (see Held). */
export const held = (packets: ReadonlyArray<LogPacket.LogPacket>): Held => {
  const receipts: Array<Receipt> = []
  const counts: Array<number> = []
  let last: Receipt | undefined
  // (Once per batch, over every packet: an indexed loop makes no iterator objects, which without
  // Turbofan are real garbage, as here and in frameBatch and settleHeld: ~87 KB/s of the reference
  // workload's 2.4 MB/s.) The runs go in two arrays, not a [receipt, n] pair each: what is held
  // lives until the connection it went on is confirmed (seconds, at a node's rates), so it is
  // promoted to V8's old generation, and a pair was 64 of the ~330 bytes promoted per run.
  for (let i = 0; i < packets.length; i++) {
    const receipt = packets[i]!.receipt
    if (receipt === undefined) continue
    if (receipt === last) counts[counts.length - 1]!++
    else {
      receipts.push(last = receipt)
      counts.push(1)
    }
  }
  return { count: packets.length, receipts, counts }
}

/** How a sender that confirms later tells the runner what became of what it wrote. */
export interface ConfirmationListener {
  /** What earlier sends wrote has arrived; called in the order they were sent. */
  readonly confirmed: (held: Held) => void
  /** This many packets were written again, after the connection they were on failed unconfirmed. */
  readonly resent: (packets: number) => void
  /**
   * The sender wants to confirm what it holds now (a connection failed with packets unconfirmed, or
   * it has been idle): the runner calls `settle` without waiting for more to send.
   */
  readonly settleSoon: () => void
}

/**
 * For transports whose receivers do not answer sends (plain TCP syslog): `send` resolving means
 * written, and the sender tells later what has arrived. It keeps what it wrote and has not
 * confirmed, and writes it again first if its connection fails.
 */
export interface LaterConfirmation {
  /** Called once, before the first send. */
  readonly listen: (listener: ConfirmationListener) => void
  /** Confirms everything written so far (for TCP: a graceful close, done once the receiver has read it all). */
  readonly settle: Effect.Effect<void, DrainError>
  /** Packets written and not confirmed yet. */
  readonly unconfirmed: () => number
  /** What it holds. */
  readonly held: () => ReadonlyArray<Held>
}

/** Delivers batches over one connection (or whatever the kind uses). One per worker. */
export interface Sender {
  /**
   * Sends one batch, in order. Fails with a DrainError that says whether retrying can help; a
   * retried batch is the same array, so a kind can remember what of it already went through.
   */
  readonly send: (batch: ReadonlyArray<LogPacket.LogPacket>) => Effect.Effect<DeliveryReport | void, DrainError>
  /** Set by senders whose receivers do not answer (see LaterConfirmation); else a send that succeeds delivered its batch. */
  readonly confirmsLater?: LaterConfirmation | undefined
}

/** What a drain kind gives the runner. */
export interface DrainSink {
  /** Opens a sender for one worker; it keeps its connection (opened on first send) for the scope's life. */
  readonly sender: Effect.Effect<Sender, never, Scope.Scope>
  /** This kind's defaults, where they differ from `defaultSettings` (configured values still win). */
  readonly settings?: Partial<DrainSettings> | undefined
  /** Most workers this kind can use, whatever is configured (1 where order matters and sends cannot overlap). */
  readonly maxWorkers?: number | undefined
  /**
   * A cheap check that the receiver can be reached again (a TCP connect): while sends fail to
   * connect, it is tried every PROBE_INTERVAL, and a success ends the backoff's wait.
   */
  readonly probe?: Effect.Effect<boolean> | undefined
  /**
   * Writes of this kind cost a syscall each (a TCP connection): a worker sending batch after
   * batch lets a small one gather for a moment (DrainRunner's COALESCE_MS) so that fewer, larger
   * writes go out.
   */
  readonly coalesce?: boolean | undefined
}

export interface DrainHandle {
  /** The drain's URL, redacted. */
  readonly display: string
  readonly kind: string
  /** Takes a packet for delivery. Never waits; false when the buffer is full (the packet is dropped and counted). */
  readonly offer: (packet: LogPacket.LogPacket) => boolean
  /** Whether `offer` would take `packet` (any small packet, if none is given) now. */
  readonly hasRoom: (packet?: LogPacket.LogPacket) => boolean
  /**
   * Busy: its buffer is half full or more (for a network packet, also at least three batches),
   * and it is sending (not failing since its last success), not closing, and its memory budget
   * has room for `packet`. With DRAIN_WHEN_FULL=block, a packet waits for such a drain
   * (`untilNotBusy`) rather than fill it further (or, a file's, park on it).
   */
  readonly busy: (packet: LogPacket.LogPacket) => boolean
  /** Until the buffer is below `packet`'s busy level, or the drain starts failing or closes. */
  readonly untilNotBusy: (packet: LogPacket.LogPacket) => Effect.Effect<void>
  /**
   * Waits until the buffer has room for `packet`; false if the drain is closing (it never will).
   * For routers that wait rather than drop (DRAIN_WHEN_FULL=block).
   */
  readonly whenRoom: (packet: LogPacket.LogPacket) => Effect.Effect<boolean>
  /**
   * A Feed (Receipt.ts) for a source whose packets this drain could not take: `stillRouted` says
   * whether the route that brought them still exists.
   */
  readonly feed: (stillRouted: () => boolean) => Feed
  /** Marks it closed for good because no route uses it any more: what it leaves is not kept for it. */
  readonly retire: () => void
  readonly stats: DrainStats.DrainStats
}
