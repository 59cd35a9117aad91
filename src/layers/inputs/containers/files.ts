/**
 * File identity for the container log input: device + inode, plus a hash of the first bytes (an
 * inode is reused once its file is deleted), and finding a file's rotated sibling.
 *
 * What is done at every look at a file (its first bytes) reads synchronously: a local file's
 * bytes are in the page cache, and a synchronous read costs ~1–3 µs where one through the thread
 * pool costs ~30–40 µs of CPU (measured on Node 24) — the bulk of following many quiet files.
 */
import { createHash } from "node:crypto"
import { readSync, type Stats } from "node:fs"
import * as Fs from "node:fs/promises"
import { basename, dirname, join } from "node:path"

export interface Identity {
  readonly dev: number
  readonly ino: number
}

export const sameIdentity = (a: Identity, b: Identity): boolean => a.dev === b.dev && a.ino === b.ino

/** How many of a file's first bytes identify it. */
export const FINGERPRINT_BYTES = 256

export interface Fingerprint {
  /** Hash of the first `fingerprintBytes` bytes (what checkpoints keep). */
  readonly fingerprint: string
  readonly fingerprintBytes: number
}

/** A fingerprint taken here, with the bytes themselves (compared without hashing). */
export interface LiveFingerprint extends Fingerprint {
  readonly prefix: Buffer
}

const hash = (bytes: Buffer) => createHash("sha1").update(bytes).digest("base64")

/** Where first bytes are read to be compared (one buffer: reads are synchronous). */
const scratch = Buffer.alloc(FINGERPRINT_BYTES)

/** The first `bytes` bytes of an open file, in `scratch` (valid until the next call), or undefined if shorter. */
const firstBytes = (handle: Fs.FileHandle, bytes: number): Buffer | undefined => {
  const bytesRead = readSync(handle.fd, scratch, 0, bytes, 0)
  return bytesRead < bytes ? undefined : scratch.subarray(0, bytes)
}

/** The fingerprint of an open file of `size` bytes: its first bytes (up to FINGERPRINT_BYTES). */
export const fingerprintOf = (handle: Fs.FileHandle, size: number): LiveFingerprint => {
  const bytes = Math.min(size, FINGERPRINT_BYTES)
  const read = firstBytes(handle, bytes)
  const prefix = read === undefined ? Buffer.alloc(0) : Buffer.from(read)
  return { fingerprint: prefix.length === bytes ? hash(prefix) : "", fingerprintBytes: prefix.length, prefix }
}

/** Whether an open file still begins with the bytes `print` was taken from. */
export const matches = (handle: Fs.FileHandle, print: Fingerprint): boolean => {
  if (print.fingerprintBytes === 0) return true
  const bytes = firstBytes(handle, print.fingerprintBytes)
  if (bytes === undefined) return false
  return "prefix" in print ? bytes.equals((print as LiveFingerprint).prefix) : hash(bytes) === print.fingerprint
}

/**
 * Where reading starts when joining a file at its end: after its last newline (within the last
 * 64 KiB), so that the first line read is whole.
 */
export const lastLineStart = async (handle: Fs.FileHandle, size: number): Promise<number> => {
  const window = Math.min(size, 65_536)
  if (window === 0) return size
  const buffer = Buffer.alloc(window)
  const { bytesRead } = await handle.read(buffer, 0, window, size - window)
  const newline = buffer.subarray(0, bytesRead).lastIndexOf(10)
  return newline < 0 ? size : size - window + newline + 1
}

/**
 * Another file in the directory of `path`'s target (rotated logs sit next to the live one) that
 * `accept` takes, opened; the caller closes it.
 */
export const findSibling = async (
  path: string,
  accept: (stat: Stats, handle: Fs.FileHandle) => Promise<boolean>
): Promise<{ readonly path: string; readonly handle: Fs.FileHandle; readonly stat: Stats } | undefined> => {
  let real: string
  try {
    real = await Fs.realpath(path)
  } catch {
    return undefined
  }
  const dir = dirname(real)
  let names: Array<string>
  try {
    names = await Fs.readdir(dir)
  } catch {
    return undefined
  }
  for (const name of names) {
    const candidate = join(dir, name)
    if (candidate === real) continue
    let handle: Fs.FileHandle | undefined
    try {
      handle = await Fs.open(candidate, "r")
      const stat = await handle.stat()
      if (stat.isFile() && (await accept(stat, handle))) return { path: candidate, handle, stat }
    } catch {
      // Gone, unreadable or not a file: not the one.
    }
    await handle?.close().catch(() => undefined)
  }
  return undefined
}

/**
 * Files rotated out of `path`'s target since `afterMs` (their last write), oldest first (names in
 * numeric order for equal times), other than those in `exclude`: the rotations in between two looks at a file (or while reading was held
 * back), which would otherwise never be read. Rotated files are named after the live one
 * (`0.log.20240101-000000`, `…-json.log.1`, `file-20240101`); compressed ones are left alone.
 */
export const rotatedSince = async (
  path: string,
  afterMs: number,
  exclude: ReadonlyArray<Identity>
): Promise<Array<{ readonly path: string; readonly stat: Stats }>> => {
  let real: string
  try {
    real = await Fs.realpath(path)
  } catch {
    return []
  }
  const dir = dirname(real)
  const base = basename(real)
  const found: Array<{ readonly path: string; readonly stat: Stats }> = []
  for (const name of await Fs.readdir(dir).catch(() => [] as Array<string>)) {
    if (name === base || !name.startsWith(base) || name.endsWith(".gz") || name.endsWith(".tmp")) continue
    const candidate = join(dir, name)
    const stat = await Fs.stat(candidate).catch(() => undefined)
    // Equal times count: file times are coarse (a few ms), and two rotations can share one.
    if (stat === undefined || !stat.isFile() || stat.mtimeMs < afterMs) continue
    if (exclude.some((identity) => sameIdentity(identity, stat))) continue
    found.push({ path: candidate, stat })
  }
  return found.toSorted((a, b) => a.stat.mtimeMs - b.stat.mtimeMs || naturalOrder(a.path, b.path))
}

/**
 * `0.log.9` before `0.log.10`: runs of digits compare by value, the rest by code unit. (Not
 * Intl.Collator: it would load ICU's collation data, megabytes of memory, for file names.)
 */
export const naturalOrder = (a: string, b: string): number => {
  const parts = /(\d+)|(\D+)/g
  const as = a.match(parts) ?? []
  const bs = b.match(parts) ?? []
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const x = as[i]!
    const y = bs[i]!
    if (x === y) continue
    const digits = isDigit(x) && isDigit(y)
    if (digits && x.length !== y.length) {
      const byValue = BigInt(x) < BigInt(y) ? -1 : BigInt(x) > BigInt(y) ? 1 : 0
      if (byValue !== 0) return byValue
    }
    return x < y ? -1 : 1
  }
  return as.length - bs.length
}

const isDigit = (part: string) => part.charCodeAt(0) >= 48 && part.charCodeAt(0) <= 57

/** The first `bytes` bytes of a file (fewer if it is shorter); empty if it cannot be read. */
export const headOf = async (path: string, bytes: number): Promise<Buffer> => {
  let handle: Fs.FileHandle | undefined
  try {
    handle = await Fs.open(path, "r")
    const buffer = Buffer.alloc(bytes)
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0)
    return buffer.subarray(0, bytesRead)
  } catch {
    return Buffer.alloc(0)
  } finally {
    await handle?.close().catch(() => undefined)
  }
}

/** Whether two heads agree on their common length (an empty one agrees with anything). */
export const agree = (a: Buffer, b: Buffer): boolean => {
  const n = Math.min(a.length, b.length)
  return a.subarray(0, n).equals(b.subarray(0, n))
}
