/**
 * The recent-logs buffer of logtail, as deis/logger kept it: per app (the packet's hostname), the
 * last N lines in Deis's format, `<time> <app>[<tag>]: <message>`, the time to the second with a
 * numeric offset (`2016-05-31T01:34:43+00:00`).
 */
import type { LogPacket } from "./LogPacket.ts"

const pad = (n: number) => (n < 10 ? `0${n}` : String(n))

/** Go's `2006-01-02T15:04:05-07:00`, in UTC. */
export const formatTime = (time: Date): string =>
  `${time.getUTCFullYear()}-${pad(time.getUTCMonth() + 1)}-${pad(time.getUTCDate())}T${pad(time.getUTCHours())}:` +
  `${pad(time.getUTCMinutes())}:${pad(time.getUTCSeconds())}+00:00`

/** The Deis line of a packet; a message's line breaks become spaces, so a line stays one line. */
export const formatLine = (packet: LogPacket): string =>
  `${formatTime(packet.time)} ${packet.hostname}[${packet.tag}]: ${packet.message.replace(/\r?\n|\r/g, " ")}`

const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ([^\s[]+)\[([^\]]*)\]: (.*)$/s

/** Reads a Deis line back (to replay it in a live tail); undefined when it is not one. */
export const parseLine = (line: string): { readonly time: Date; readonly app: string; readonly tag: string; readonly message: string } | undefined => {
  const match = LINE.exec(line)
  if (match === null) return undefined
  const time = new Date(match[1]!)
  if (Number.isNaN(time.getTime())) return undefined
  return { time, app: match[2]!, tag: match[3]!, message: match[4]! }
}

/** `?log_lines=N`: as deis/logger, absent or not a number → 100. Zero or less gives nothing. */
export const parseLogLines = (value: string | null): number => {
  if (value === null || !/^[+-]?\d+$/.test(value.trim())) return 100
  const n = Number(value.trim())
  return Number.isSafeInteger(n) ? Math.max(0, n) : 100
}

/** A fixed-capacity ring: pushing past capacity forgets the oldest. */
export class Ring<A> {
  private readonly items: Array<A | undefined>
  private start = 0
  private count = 0

  readonly capacity: number

  constructor(capacity: number) {
    this.capacity = capacity
    this.items = Array.from({ length: Math.min(capacity, 4) })
  }

  get size(): number {
    return this.count
  }

  push(item: A): void {
    if (this.capacity === 0) return
    if (this.count < this.capacity) {
      const at = (this.start + this.count) % Math.max(this.items.length, 1)
      if (this.count === this.items.length) {
        // Grow (up to capacity) instead of allocating it all for an app that logs little.
        this.unroll(Math.min(this.capacity, this.items.length * 2))
        this.items[this.count] = item
      } else {
        this.items[at] = item
      }
      this.count++
      return
    }
    this.items[this.start] = item
    this.start = (this.start + 1) % this.items.length
  }

  /** The last `n` items, oldest first. */
  last(n: number): Array<A> {
    const take = Math.max(0, Math.min(n, this.count))
    const out: Array<A> = []
    for (let i = this.count - take; i < this.count; i++) out.push(this.items[(this.start + i) % this.items.length]!)
    return out
  }

  private unroll(length: number): void {
    const ordered = this.last(this.count)
    this.items.length = length
    for (let i = 0; i < length; i++) this.items[i] = i < ordered.length ? ordered[i] : undefined
    this.start = 0
  }
}
