/**
 * A drain's buffer, split into lanes: one worker (and one connection) each. A packet's lane is
 * chosen by a hash of its hostname and tag, so each source's packets go through one lane, in
 * order. Plain data and functions: the runner (DrainRunner.ts) decides when lanes are added and
 * what their workers do.
 */
import { Deferred, Effect } from "effect"
import * as LogPacket from "../../domain/LogPacket.ts"
import type { Receipt } from "../../domain/Receipt.ts"

/** A child lane's wait for its parent: released once the parent is done with `remaining` more packets. */
interface Release {
  remaining: number
  readonly gate: Deferred.Deferred<void>
}

/** One worker's share of the buffer: a FIFO with a byte count and a way to wake its worker. */
export class Lane {
  private items: Array<LogPacket.LogPacket | undefined> = []
  private head = 0
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
    return this.items.length - this.head
  }

  push(packet: LogPacket.LogPacket, bytes: number): void {
    this.items.push(packet)
    this.bytes += bytes
    if (this.wake !== undefined && this.items.length - this.head >= this.wakeAt) this.wakeSoon()
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

  /** The approximate bytes of what the last `take` took. */
  takenBytes = 0

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
    this.takenBytes = bytes
    this.pending += batch.length
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return batch
  }

  /** The batch being delivered, and the sender's view of what it wrote (for what a close leaves). */
  current: ReadonlyArray<LogPacket.LogPacket> | undefined = undefined
  held: (() => ReadonlyArray<{ readonly count: number; readonly receipts: ReadonlyArray<readonly [Receipt, number]> }>) | undefined = undefined

  /** Everything still queued, taken out (what a close leaves). */
  clear(): Array<LogPacket.LogPacket> {
    const left = this.items.slice(this.head) as Array<LogPacket.LogPacket>
    this.items = []
    this.head = 0
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
    for (let i = this.head; i < this.items.length; i++) {
      const moves = sourceHash(this.items[i]!) & bit
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
