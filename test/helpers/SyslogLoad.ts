/**
 * Numbered syslog lines of a fixed size, sent to logtrain's syslog TCP input at a given rate from
 * several sources (hostnames), and read back whole or not at the other end — for fault tests of
 * drains, with Delivery.ts counting what arrived.
 *
 * A line is RFC 5424 (forwarded byte for byte by the syslog drains): `<14>1 <time> <source> app -
 * - - <source> <n> xxx….`, padded to exactly `size` bytes, so a cut or merged line never reads as
 * whole.
 */
import * as Net from "node:net"
import type { Numbered } from "./Delivery.ts"

const TIME = "2024-01-01T00:00:00.000Z"

/** Line `seq` of `source`, `size` bytes long. */
export const line = (source: string, seq: number, size: number): string => {
  const head = `<14>1 ${TIME} ${source} app - - - ${source} ${seq} `
  return `${head}${"x".repeat(Math.max(1, size - head.length - 1))}.`
}

/** Reads a line made by `line` (of this size), or undefined when it is not whole. */
export const parser = (size: number) => {
  const shape = /^<14>1 \S+ (\S+) app - - - (\S+) (\d+) x+\.$/
  return (text: string): Numbered | undefined => {
    if (text.length !== size) return undefined
    const match = shape.exec(text)
    if (match === null || match[1] !== match[2]) return undefined
    return { source: match[1]!, seq: Number(match[3]) }
  }
}

export interface Load {
  /** Lines written so far, per source (numbered from 0). */
  readonly sent: Map<string, number>
  readonly total: () => number
  /** Resolves once every line is written (and the connection closed). */
  readonly done: Promise<void>
}

/**
 * Sends `count` lines of `size` bytes over one connection to `port`, round-robin over `sources`,
 * at `rate` lines per second (Infinity: as fast as logtrain reads them). Octet-counted framing.
 * Waits when logtrain does not read (TCP backpressure), then catches up.
 */
export const send = (options: {
  readonly port: number
  readonly sources: ReadonlyArray<string>
  readonly count: number
  readonly rate: number
  readonly size: number
}): Load => {
  const sent = new Map(options.sources.map((source) => [source, 0]))
  let written = 0
  const socket = Net.createConnection({ host: "127.0.0.1", port: options.port })
  socket.setNoDelay(true)
  const frames = (n: number): string => {
    let out = ""
    for (let i = 0; i < n; i++) {
      const source = options.sources[written % options.sources.length]!
      const seq = sent.get(source)!
      sent.set(source, seq + 1)
      written++
      const text = line(source, seq, options.size)
      out += `${text.length} ${text}`
    }
    return out
  }
  const done = new Promise<void>((resolve, reject) => {
    socket.once("error", reject)
    socket.once("connect", async () => {
      const started = Date.now()
      while (written < options.count) {
        const due = Number.isFinite(options.rate)
          ? Math.min(options.count, Math.floor(((Date.now() - started) / 1000) * options.rate))
          : options.count
        const n = Math.min(due - written, 500)
        if (n > 0) {
          if (!socket.write(frames(n))) await new Promise((r) => socket.once("drain", r))
          continue
        }
        await new Promise((r) => setTimeout(r, 5))
      }
      socket.end(() => resolve())
    })
  })
  return {
    sent,
    total: () => written,
    done
  }
}

/**
 * Waits until `progress()` reaches `target`, or has not changed for `quietMs`, or `timeoutMs` has
 * passed; never fails (the caller asserts on what arrived).
 */
export const settle = async (
  progress: () => number | Promise<number>,
  target: number,
  quietMs: number,
  timeoutMs: number
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let last = await progress()
  let since = Date.now()
  while (Date.now() < deadline) {
    const now = await progress()
    if (now >= target) return
    if (now !== last) {
      last = now
      since = Date.now()
    } else if (Date.now() - since >= quietMs) return
    await new Promise((r) => setTimeout(r, 50))
  }
}
