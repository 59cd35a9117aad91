/**
 * The files a follower reads: its generations (the file the path names now, and the ones before
 * it still needed), places in them (marks), and the few synchronous reads shared by the head and
 * the drains behind.
 */
import * as Fs from "node:fs"
import * as Files from "./files.ts"

/** Bytes read at once. */
export const CHUNK = 64 * 1024

/** One read buffer for everything: reads are synchronous and decoding copies what it keeps. */
const buffer = Buffer.allocUnsafeSlow(CHUNK)
/**
 * The buffer as readvSync takes it. A read that fills the whole buffer (a live file's, every look)
 * goes through readvSync: fs.readSync's argument checks (`arguments`, wrapped validators) left
 * ~280 bytes of garbage per call without Turbofan, readvSync ~50 (Node 24, --no-turbofan, 330k
 * calls: 114 scavenges of a 1 MB semi-space against 17), in the same time: a fifth of what the
 * reference workload allocated (1,560 reads a second).
 */
const buffers = [buffer]

/** Reads up to `n` bytes (at most CHUNK) of `fd` at `position` into the shared buffer; a view of what was read, valid until the next read. */
export const readAt = (fd: number, n: number, position: number): Buffer => {
  const got = n === CHUNK ? Fs.readvSync(fd, buffers, position) : Fs.readSync(fd, buffer, 0, n, position)
  // (Most looks at a busy file polled between its writes find nothing: no view made for them.)
  return got === 0 ? EMPTY : buffer.subarray(0, got)
}

const EMPTY = Buffer.alloc(0)

export class Generation {
  /** Open while something may read it; undefined once closed, or when it could not be found. */
  fd: number | undefined
  identity: Files.Identity
  print: Files.Fingerprint
  /** The file's size once nothing writes it any more (renamed away, copied); undefined while live. */
  size: number | undefined = undefined
  mtimeMs: number
  /** Its place among the generations (a live file found to have had copies before it moves after them). */
  seq: number
  constructor(seq: number, fd: number | undefined, identity: Files.Identity, print: Files.Fingerprint, mtimeMs: number) {
    this.seq = seq
    this.fd = fd
    this.identity = identity
    this.print = print
    this.mtimeMs = mtimeMs
  }
  close(): void {
    if (this.fd !== undefined) Files.closeQuietly(this.fd)
    this.fd = undefined
  }
}

/** A place to start reading from: generation, byte (no line pending there), and the first position wanted. */
export interface Mark {
  readonly gen: Generation
  readonly offset: number
  readonly from: number
}

/** Whether `a` comes before `b`. */
export const earlier = (a: { readonly gen: Generation; readonly from: number }, b: { readonly gen: Generation; readonly from: number }) =>
  a.gen.seq < b.gen.seq || (a.gen.seq === b.gen.seq && a.from < b.from)

/** Whether the file at `path` begins with the bytes `print` was taken from. */
export const matchesFile = (path: string, print: Files.Fingerprint): boolean => {
  const fd = Files.openRead(path)
  if (fd === undefined) return false
  try {
    return Files.matches(fd, print)
  } finally {
    Files.closeQuietly(fd)
  }
}

/** Lines of `gen` between two offsets ending at or after position `wanted` (lines given up on; the others were had). */
export const countLines = (gen: Generation, from: number, to: number, wanted: number): number => {
  if (gen.fd === undefined) return 0
  let lines = 0
  for (let at = from; at < to;) {
    const n = Fs.readSync(gen.fd, buffer, 0, Math.min(CHUNK, to - at), at)
    if (n === 0) break
    for (let i = buffer.indexOf(10, 0); i >= 0 && i < n; i = buffer.indexOf(10, i + 1)) if (at + i + 1 >= wanted) lines++
    at += n
  }
  return lines
}

/** The start of the first line at or after `at` (before `end`), or `end`. */
export const lineStartAfter = (gen: Generation, at: number, end: number): number => {
  if (gen.fd === undefined || at === 0) return at
  for (let from = at - 1; from < end;) {
    const n = Fs.readSync(gen.fd, buffer, 0, Math.min(CHUNK, end - from), from)
    if (n === 0) break
    const newline = buffer.subarray(0, n).indexOf(10)
    if (newline >= 0) return from + newline + 1
    from += n
  }
  return end
}
