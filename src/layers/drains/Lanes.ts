/**
 * A drain's buffer, split into lanes: one worker (and one connection) each. A packet's lane is
 * chosen by a hash of its hostname and tag, so each source's packets go through one lane, in
 * order. Plain data and functions: the runner (DrainRunner.ts) decides when lanes are added and
 * what their workers do.
 */
import { Deferred, Effect } from "effect"
import * as LogPacket from "../../domain/LogPacket.ts"
import type { Held } from "./DrainSink.ts"

/** A child lane's wait for its parent: released once the parent is done with `remaining` more packets. */
interface Release {
  remaining: number
  readonly gate: Deferred.Deferred<void>
}

/** A lane's ring starts with room for this many packets (a power of two)… */
const INITIAL_RING = 16
/** …and one grown past this is let go once the lane is empty (a backlog's ring is not kept). */
const KEPT_RING = 16_384

const ring = (): Array<LogPacket.LogPacket | undefined> => Array.from({ length: INITIAL_RING })

/** One worker's share of the buffer: a FIFO with a byte count and a way to wake its worker. */
export class Lane {
  /**
   * The queued packets: a ring, `count` of them from `head`, its size a power of two. Kept from
   * batch to batch (it grows, up to the drain's buffer, and shrinks back once it is empty), so
   * queueing a packet allocates nothing: an array pushed to and then dropped, once per batch, was
   * ~30 bytes of garbage a packet (allocation profile, relay bench).
   */
  private items: Array<LogPacket.LogPacket | undefined> = ring()
  private head = 0
  private count = 0
  bytes = 0
  /** Wakes the worker once the lane holds `wakeAt` packets. */
  wakeAt = 1
  wake: (() => void) | undefined = undefined
  /** Set while this lane waits for its parent to be done with what it held when the lane was split off. */
  gate: Deferred.Deferred<void> | undefined = undefined
  /**
   * Packets taken from the lane and not done with yet: in flight, or written by a transport that
   * confirms later (plain TCP) and not confirmed yet. They still count in the drain's depth.
   */
  pending = 0
  /**
   * Set when a child lane waits for this one: how many more packets this lane writes before it
   * asks its sender to confirm everything written (a graceful close, for TCP), so that the child
   * knows its sources' earlier packets have arrived before it sends theirs on another connection.
   */
  settleAfter: number | undefined = undefined
  private readonly releases: Array<Release> = []

  get length(): number {
    return this.count
  }

  push(packet: LogPacket.LogPacket, bytes: number): void {
    if (this.count === this.items.length) this.grow()
    this.items[(this.head + this.count) & (this.items.length - 1)] = packet
    this.count++
    this.bytes += bytes
    if (this.wake !== undefined && this.count >= this.wakeAt) this.wakeSoon()
  }

  /** Twice the room, the packets in order from the start. */
  private grow(): void {
    const items = [...this.items.slice(this.head), ...this.items.slice(0, this.head)]
    for (let i = 0; i < this.count; i++) items.push(undefined)
    this.items = items
    this.head = 0
  }

  /**
   * Wakes the worker. Resuming a fiber runs it right here, e.g. inside the router's loop over a
   * chunk; waking it in a microtask lets the whole chunk land first, so it is sent as one batch,
   * not one packet and then the rest.
   */
  wakeSoon(): void {
    const wake = this.wake
    if (wake === undefined) return
    this.wake = undefined
    queueMicrotask(wake)
  }

  /** When (Date.now()) the worker last took a batch. */
  takenAt = Number.NEGATIVE_INFINITY

  /** The approximate bytes of what the last `take` took. */
  takenBytes = 0

  take(maxCount: number, maxBytes: number): Array<LogPacket.LogPacket> {
    const items = this.items
    const mask = items.length - 1
    const most = Math.min(maxCount, this.count)
    let n = 0
    let bytes = 0
    for (; n < most; n++) {
      const size = LogPacket.approximateBytes(items[(this.head + n) & mask]!)
      if (n > 0 && bytes + size > maxBytes) break
      bytes += size
    }
    // The batch copied out in an array of its exact size (pushing to a growing one left garbage).
    const end = this.head + n
    let batch: Array<LogPacket.LogPacket | undefined>
    if (end <= items.length) {
      batch = items.slice(this.head, end)
      items.fill(undefined, this.head, end)
    } else {
      batch = items.slice(this.head)
      for (let i = 0; i < end - items.length; i++) batch.push(items[i])
      items.fill(undefined, this.head)
      items.fill(undefined, 0, end - items.length)
    }
    this.head = end & mask
    this.count -= n
    this.bytes -= bytes
    this.takenBytes = bytes
    this.pending += n
    if (this.count === 0) {
      this.head = 0
      if (items.length > KEPT_RING) this.items = ring()
    }
    return batch as Array<LogPacket.LogPacket>
  }

  /** The batch being delivered, and the sender's view of what it wrote (for what a close leaves). */
  current: ReadonlyArray<LogPacket.LogPacket> | undefined = undefined
  held: (() => ReadonlyArray<Held>) | undefined = undefined

  /** Everything still queued, taken out (what a close leaves). */
  clear(): Array<LogPacket.LogPacket> {
    const mask = this.items.length - 1
    const left: Array<LogPacket.LogPacket> = []
    for (let i = 0; i < this.count; i++) left.push(this.items[(this.head + i) & mask]!)
    this.items = ring()
    this.head = 0
    this.count = 0
    this.bytes = 0
    return left
  }

  /**
   * Whether doubling the lanes would share out what this lane holds: some of its packets' sources
   * stay and some move (`bit` is the lane count before doubling). A lane whose backlog is all one
   * source gains nothing from a split, and pays for it: it must confirm what it wrote (a graceful
   * close, and a new connection) while its backlog grows.
   */
  divides(bit: number): boolean {
    let seen = -1
    const mask = this.items.length - 1
    for (let i = 0; i < this.count; i++) {
      const moves = sourceHash(this.items[(this.head + i) & mask]!) & bit
      if (seen === -1) seen = moves
      else if (moves !== seen) return true
    }
    return false
  }

  /** A child lane must wait until this lane is done with everything it holds now. */
  holdBack(child: Lane): void {
    const backlog = this.length + this.pending
    if (backlog === 0) return
    child.gate = Deferred.makeUnsafe<void>()
    this.releases.push({ remaining: backlog, gate: child.gate })
    this.settleAfter = Math.max(this.settleAfter ?? 0, this.length)
    if (this.settleAfter === 0) this.wakeSoon()
  }

  /** Records `n` packets done (delivered or dropped) and opens the gates of children now free to go. */
  completed(n: number): void {
    this.pending -= n
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

/**
 * The last source hashed, and its hash: packets come in runs of one source (a container log
 * file's all carry its own two strings, so telling them the same is a pointer compare), and
 * hashing every packet's names again was ~85 ns of each (more than reading its line).
 */
let lastHostname: string | undefined = undefined
let lastTag: string | undefined = undefined
let lastHash = 0

/** FNV-1a over hostname and tag: which lane a source's packets go to. */
export const sourceHash = (packet: LogPacket.LogPacket): number => {
  const { hostname, tag } = packet
  if (hostname === lastHostname && tag === lastTag) return lastHash
  let h = 0x811c9dc5
  for (let i = 0; i < hostname.length; i++) h = Math.imul(h ^ hostname.charCodeAt(i), 0x01000193)
  h = Math.imul(h ^ 0x1f, 0x01000193)
  for (let i = 0; i < tag.length; i++) h = Math.imul(h ^ tag.charCodeAt(i), 0x01000193)
  lastHostname = hostname
  lastTag = tag
  lastHash = h >>> 0
  return lastHash
}

/** The lane of a packet among `lanes` (a power of two). */
export const laneOf = (lanes: ReadonlyArray<Lane>, packet: LogPacket.LogPacket): Lane =>
  lanes.length === 1 ? lanes[0]! : lanes[sourceHash(packet) & (lanes.length - 1)]!
