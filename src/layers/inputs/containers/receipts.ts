/**
 * Receipts of one followed file: packets are handed over in chunks, each chunk the receipt its
 * packets carry (domain/Receipt.ts). A chunk counts what is not routed yet and, by drain, what is
 * offered and not settled; once all of it is settled, the place it marks may be passed. A drain
 * that was full when offered one of them is parked at that packet (Behind): it reads the file's
 * backlog by itself (behind.ts), and skips the head's packets until it has caught up.
 */
import type * as LogPacket from "../../../domain/LogPacket.ts"
import type { PositionedLine, LineReader } from "../../../domain/LineReader.ts"
import type { Feed, Receipt } from "../../../domain/Receipt.ts"
import type { FileFollower } from "./FileFollower.ts"
import { earlier, type Generation, type Mark } from "./generations.ts"

/**
 * An empty array that holds objects from the start. An empty literal is an array of small
 * integers until its first push makes it one of objects (another map), and code optimized while
 * the arrays it saw had all changed was thrown away when a new one came: `headLine` (and the
 * reader's code it is inlined in) when a file's first chunk was pushed, or a packet to the
 * poller's new array of packets, and `route` when a chunk's first drain was (--trace-deopt, files
 * scenario: "not a Smi", then "wrong map"; each time compiled again, ~15-40 ms of Turbofan on the
 * core that reads).
 */
export const objects = <A>(): Array<A> => {
  const array: Array<A | undefined> = [undefined]
  array.pop()
  return array as Array<A>
}

/** Who reads a generation: the head, or a drain behind. Chunks settle to their reader. */
export interface ChunkOwner {
  readonly chunks: Array<Chunk>
}

/** Packets handed over together, from one generation: their receipt. */
export class Chunk implements Receipt, Mark {
  /** Packets not routed yet (the head's; 0 for a drain's backlog, which goes to it directly). */
  unrouted: number
  /** Packets not routed yet, plus offers not settled yet. */
  outstanding: number
  /**
   * Offers not settled yet, by drain: the first drain's in two fields (a file's packets mostly go
   * to one), any other's in `others`; each drain in one place only. A chunk lives until its drains
   * confirm it (seconds, for a syslog drain at a node's rates), so it is promoted to V8's old
   * generation, and an array with a pair in it was ~120 of the ~330 bytes promoted per chunk.
   */
  private owedTo: string | undefined = undefined
  private owedOffers = 0
  private others: Array<[endpoint: string, offers: number]> | undefined = undefined
  /** Offers made (settled or not). */
  offers = 0
  readonly follower: FileFollower
  readonly owner: ChunkOwner
  /**
   * Where reading starts to give these packets again (the generation and a byte in it), and the
   * first one's position: the chunk's mark, kept in its own fields (a chunk is promoted to V8's old
   * generation while its drains confirm it, and a mark object of its own was 48 more bytes each).
   */
  readonly gen: Generation
  readonly offset: number
  readonly from: number
  /** The last packet's position. */
  last: number
  constructor(follower: FileFollower, owner: ChunkOwner, gen: Generation, offset: number, from: number, last: number, routed: number) {
    this.follower = follower
    this.owner = owner
    this.gen = gen
    this.offset = offset
    this.from = from
    this.last = last
    this.unrouted = routed
    this.outstanding = routed
  }
  /** Its mark: where reading starts to give these packets again, and the first one's position. */
  get mark(): Mark {
    return this
  }
  /** How many drains it owes offers to (settled not yet). */
  get owing(): number {
    return (this.owedTo === undefined ? 0 : 1) + (this.others === undefined ? 0 : this.others.length)
  }
  /** The `i`th of the drains it owes offers to (indexed: no iterator). */
  owingAt(i: number): string {
    if (this.owedTo === undefined) return this.others![i]![0]
    return i === 0 ? this.owedTo : this.others![i - 1]![0]
  }
  /** One more of the head's packets, at `position` (the chunk is being filled: nothing routed yet). */
  add(position: number): void {
    this.last = position
    this.unrouted++
    this.outstanding++
  }
  wants(endpoint: string, packet: LogPacket.LogPacket): boolean {
    return wants(this.follower, endpoint, this, packet.position!)
  }
  offered(endpoint: string): void {
    this.outstanding++
    this.offers++
    if (this.owedTo === endpoint) {
      this.owedOffers++
      return
    }
    // (Once per packet and drain: an indexed loop makes no iterator.)
    const others = this.others
    if (others !== undefined) {
      for (let i = 0; i < others.length; i++) {
        const pair = others[i]!
        if (pair[0] === endpoint) {
          pair[1]++
          return
        }
      }
    }
    if (this.owedTo === undefined) {
      this.owedTo = endpoint
      this.owedOffers = 1
    } else if (others === undefined) this.others = [[endpoint, 1]]
    else others.push([endpoint, 1])
  }
  routed(endpoints: ReadonlyArray<string> | undefined): void {
    this.follower.changed()
    this.unrouted--
    if (this.owner === this.follower) this.follower.routes = endpoints
    if (this.unrouted === 0) routedUpTo(this.follower, this)
    if (--this.outstanding === 0) settled(this.follower, this.owner)
  }
  /** `packets` of its offers to `endpoint` settled (no more than it owes: as many single settles would). */
  settle(endpoint: string, packets = 1): void {
    this.follower.changed()
    let n: number
    if (this.owedTo === endpoint) {
      n = Math.min(packets, this.owedOffers)
      if ((this.owedOffers -= n) === 0) this.owedTo = undefined
    } else {
      const others = this.others
      const at = others === undefined ? -1 : others.findIndex((pair) => pair[0] === endpoint)
      if (at < 0) return
      const pair = others![at]!
      n = Math.min(packets, pair[1])
      if ((pair[1] -= n) === 0) others!.splice(at, 1)
    }
    if ((this.outstanding -= n) === 0) settled(this.follower, this.owner)
  }
  /** What `endpoint` owes is forgiven (its route is gone); returns whether it owed anything. */
  forgive(endpoint: string): boolean {
    if (this.owedTo === endpoint) {
      this.outstanding -= this.owedOffers
      this.owedTo = undefined
      this.owedOffers = 0
      return true
    }
    const at = this.others === undefined ? -1 : this.others.findIndex((pair) => pair[0] === endpoint)
    if (at < 0) return false
    this.outstanding -= this.others![at]![1]
    this.others!.splice(at, 1)
    return true
  }
  park(endpoint: string, packet: LogPacket.LogPacket, feed: Feed): void {
    park(this.follower, endpoint, this, packet.position!, feed)
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
  readonly chunks: Array<Chunk> = objects()
  /** Once caught up: the head's packets after this go to it again. */
  rejoinAt: { readonly gen: Generation; readonly from: number } | undefined = undefined
  constructor(endpoint: string, feed: Feed, mark: Mark) {
    this.endpoint = endpoint
    this.feed = feed
    this.mark = mark
  }
}

export const wants = (follower: FileFollower, endpoint: string, chunk: Chunk, position: number): boolean => {
  if (follower.behind.size === 0 && follower.restart === undefined) return true
  const here = { gen: chunk.mark.gen, from: position }
  const b = follower.behind.get(endpoint)
  if (b !== undefined) return b.rejoinAt !== undefined && earlier(b.rejoinAt, here)
  if (follower.restart === undefined) return true
  const mark = follower.restart.marks.get(follower.keyOf(endpoint)) ?? follower.restart.others
  return !earlier(here, mark)
}

/** The head's packets up to the end of `chunk` have all been routed. */
export const routedUpTo = (follower: FileFollower, chunk: Chunk): void => {
  if (chunk.owner !== follower) return
  follower.routed = { gen: chunk.mark.gen, from: chunk.last }
  // A generation the head has left may now be closed (no packet of it can be parked any more).
  if (chunk.mark.gen !== follower.gen || follower.ended) follower.release()
  // Drains that caught up have no use for their entry once everything before it was routed.
  if (follower.behind.size > 0) {
    for (const [endpoint, b] of follower.behind) {
      if (b.rejoinAt !== undefined && b.chunks.length === 0 && !earlier(follower.routed, b.rejoinAt)) follower.behind.delete(endpoint)
    }
  }
  if (follower.restart !== undefined && passedRestartMarks(follower)) follower.restart = undefined
}

const passedRestartMarks = (follower: FileFollower): boolean => {
  const routed = follower.routed!
  if (earlier(routed, follower.restart!.others)) return false
  for (const mark of follower.restart!.marks.values()) if (earlier(routed, mark)) return false
  return true
}

/** Some chunk of `owner` settled: forget the settled ones at the front. */
export const settled = (follower: FileFollower, owner: ChunkOwner): void => {
  const chunks = owner.chunks
  while (chunks.length > 0 && chunks[0]!.outstanding === 0) chunks.shift()
  if (owner !== follower && chunks.length === 0) {
    const b = owner as Behind
    if (b.rejoinAt !== undefined && follower.routed !== undefined && !earlier(follower.routed, b.rejoinAt)) follower.behind.delete(b.endpoint)
  }
}

export const park = (follower: FileFollower, endpoint: string, chunk: Chunk, position: number, feed: Feed): void => {
  follower.changed()
  const mark: Mark = { gen: chunk.mark.gen, offset: chunk.mark.offset, from: position }
  const b = follower.behind.get(endpoint)
  if (b === undefined) {
    const parked = new Behind(endpoint, feed, mark)
    follower.behind.set(endpoint, parked)
    follower.onParked(parked)
    return
  }
  if (b.rejoinAt === undefined) return // Already reading its backlog from before this packet.
  b.mark = mark
  b.feed = feed
  b.reader = undefined
  b.rejoinAt = undefined
  follower.onParked(b)
}

/** `endpoint` is no longer routed this file's packets: nothing waits for it any more. */
export const forget = (follower: FileFollower, endpoint: string): void => {
  follower.behind.delete(endpoint)
  let forgiven = false
  for (const chunk of follower.chunks) forgiven = chunk.forgive(endpoint) || forgiven
  if (forgiven) settled(follower, follower)
  follower.release()
}
