/**
 * The fingerprinter of the container log input: a file's identity (device + inode) and fingerprint
 * (its first bytes: an inode is reused once its file is deleted, and a copytruncate copy has a new
 * inode but the same first bytes), and finding a file's rotated siblings and copies.
 *
 * Everything here is synchronous: local files are in the page cache, a synchronous call costs
 * ~1–3 µs where one through the thread pool costs ~30–40 µs of CPU (measured on Node 24), and a
 * follower whose every step is synchronous has no interleavings to get wrong.
 */
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
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
/** `scratch` as readvSync takes it (less garbage per read than readSync: see generations.ts, readAt). */
const scratches = [scratch]

/** The first `bytes` bytes of an open file, in `scratch` (valid until the next call), or undefined if shorter. */
const firstBytes = (fd: number, bytes: number): Buffer | undefined => {
  const bytesRead = Fs.readSync(fd, scratch, 0, bytes, 0)
  return bytesRead < bytes ? undefined : scratch.subarray(0, bytes)
}

/** The fingerprint of an open file of `size` bytes: its first bytes (up to FINGERPRINT_BYTES). */
export const fingerprintOf = (fd: number, size: number): LiveFingerprint => {
  const bytes = Math.min(size, FINGERPRINT_BYTES)
  const read = bytes === 0 ? undefined : firstBytes(fd, bytes)
  const prefix = read === undefined ? Buffer.alloc(0) : Buffer.from(read)
  return { fingerprint: prefix.length === 0 ? "" : hash(prefix), fingerprintBytes: prefix.length, prefix }
}

/**
 * `print` grown with bytes just read at `at` from the file it was taken from (and checked, after
 * the read, to begin as `print` still): so that a print taken while the file was short covers more
 * of the same generation. Taken from what was read, never read again — a truncation between the
 * read and another look would give another generation's first bytes. Undefined when the bytes
 * leave a gap after the print, or the print has no bytes to extend.
 */
export const extendedBy = (fd: number, print: Fingerprint, at: number, bytes: Buffer): LiveFingerprint | undefined => {
  if (print.fingerprintBytes >= FINGERPRINT_BYTES || at > print.fingerprintBytes) return undefined
  const wanted = Math.min(FINGERPRINT_BYTES, at + bytes.length)
  if (wanted <= print.fingerprintBytes) return undefined
  // A print from a checkpoint keeps only its hash: its bytes are read once, and must hash the same.
  const known = "prefix" in print ? (print as LiveFingerprint).prefix : Buffer.from(firstBytes(fd, print.fingerprintBytes) ?? Buffer.alloc(0))
  if (known.length !== print.fingerprintBytes || (known.length > 0 && hash(known) !== print.fingerprint)) return undefined
  const prefix = Buffer.concat([known, bytes.subarray(print.fingerprintBytes - at, wanted - at)])
  return { fingerprint: hash(prefix), fingerprintBytes: prefix.length, prefix }
}

/** Whether an open file still begins with the bytes `print` was taken from. */
export const matches = (fd: number, print: Fingerprint): boolean => {
  const n = print.fingerprintBytes
  if (n === 0) return true
  // (After every read of a live file: compared in place, no view of `scratch` made.)
  if ((n === FINGERPRINT_BYTES ? Fs.readvSync(fd, scratches, 0) : Fs.readSync(fd, scratch, 0, n, 0)) < n) return false
  if (!("prefix" in print)) return hash(scratch.subarray(0, n)) === print.fingerprint
  const prefix = (print as LiveFingerprint).prefix
  // Compared natively (memcmp): a loop over the 256 bytes took ~1 µs without Turbofan (as under a
  // memory limit), `equals` ~0.14 µs, and this runs after every read that finds lines (~500 a
  // second in the reference workload).
  return n === scratch.length ? prefix.equals(scratch) : scratch.compare(prefix, 0, n, 0, n) === 0
}

/**
 * O_NOATIME where the process may use it (the file's owner, or CAP_FOWNER: root, as the DaemonSet
 * runs): with `relatime`, the first read after each write updates the file's access time, which
 * dirties its inode and journals it — at a node's rates, about a tenth of the input's kernel time
 * (perf, the reference workload: 48 of 164 samples of its reads).
 */
let noAtime = Fs.constants.O_NOATIME ?? 0

/** Opens a file to read; undefined if it is gone. */
export const openRead = (path: string): number | undefined => {
  try {
    try {
      return Fs.openSync(path, Fs.constants.O_RDONLY | noAtime)
    } catch (error) {
      if (noAtime === 0 || (error as NodeJS.ErrnoException).code !== "EPERM") throw error
      // Not allowed to (not the file's owner, no CAP_FOWNER): plain reads from now on.
      noAtime = 0
      return Fs.openSync(path, Fs.constants.O_RDONLY)
    }
  } catch (error) {
    if (isMissing(error)) return undefined
    throw error
  }
}

export const closeQuietly = (fd: number): void => {
  try {
    Fs.closeSync(fd)
  } catch {
    // Already closed.
  }
}

/** A file's stats by path, or undefined when it is gone. */
export const statPath = (path: string): Fs.Stats | undefined => Fs.statSync(path, { throwIfNoEntry: false })

export const isMissing = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException).code
  return code === "ENOENT" || code === "ENOTDIR"
}

/**
 * Where reading starts when joining a file at its end: after its last newline (within the last
 * 64 KiB), so that the first line read is whole.
 */
export const lastLineStart = (fd: number, size: number): number => {
  const window = Math.min(size, 65_536)
  if (window === 0) return size
  const buffer = Buffer.alloc(window)
  const bytesRead = Fs.readSync(fd, buffer, 0, window, size - window)
  const newline = buffer.subarray(0, bytesRead).lastIndexOf(10)
  return newline < 0 ? size : size - window + newline + 1
}

/** A file next to the live one: its path, stats, and (opened) descriptor. */
export interface Sibling {
  readonly path: string
  readonly stat: Fs.Stats
  readonly fd: number
}

/** The directory holding `path`'s target, and the target's name (rotated logs sit next to the live one). */
const homeOf = (path: string): { readonly dir: string; readonly base: string } | undefined => {
  try {
    const real = Fs.realpathSync(path)
    return { dir: dirname(real), base: basename(real) }
  } catch {
    return undefined
  }
}

/**
 * Files rotated out of `path`'s target (named after it: `0.log.20240101-000000`, `…-json.log.1`;
 * compressed ones left alone), other than `exclude`, oldest first (names in numeric order for
 * equal times), modified at or after `afterMs` (file times are coarse: two rotations can share
 * one). `home` names the directory when the path itself is gone.
 */
export const rotatedSince = (
  path: string,
  afterMs: number,
  exclude: ReadonlyArray<Identity>,
  home = homeOf(path)
): Array<{ readonly path: string; readonly stat: Fs.Stats }> => {
  if (home === undefined) return []
  const found: Array<{ readonly path: string; readonly stat: Fs.Stats }> = []
  let names: Array<string>
  try {
    names = Fs.readdirSync(home.dir)
  } catch {
    return []
  }
  for (const name of names) {
    if (name === home.base || !name.startsWith(home.base) || name.endsWith(".gz") || name.endsWith(".tmp")) continue
    const candidate = join(home.dir, name)
    const stat = Fs.statSync(candidate, { throwIfNoEntry: false })
    if (stat === undefined || !stat.isFile() || stat.mtimeMs < afterMs) continue
    if (exclude.some((identity) => sameIdentity(identity, stat))) continue
    found.push({ path: candidate, stat })
  }
  return found.toSorted((a, b) => a.stat.mtimeMs - b.stat.mtimeMs || naturalOrder(a.path, b.path))
}

/**
 * A file next to `path`'s target (the live one included) that begins with the bytes of `print`
 * and holds at least `minSize` bytes, other than `exclude`; `prefer` wins when it qualifies (the
 * same inode: renamed). Opened: the caller closes it. This finds a generation again after a
 * restart — renamed (same inode) or a copytruncate copy (a new inode, the same first bytes) —
 * and the copy of a file truncated while it was followed.
 */
export const findByFingerprint = (
  path: string,
  print: Fingerprint,
  minSize: number,
  options: { readonly prefer?: Identity | undefined; readonly exclude?: ReadonlyArray<Identity> | undefined; readonly home?: { readonly dir: string; readonly base: string } | undefined } = {}
): Sibling | undefined => {
  const home = options.home ?? homeOf(path)
  if (home === undefined) return undefined
  let names: Array<string>
  try {
    names = Fs.readdirSync(home.dir)
  } catch {
    return undefined
  }
  let best: { readonly sibling: Sibling; readonly rank: number } | undefined
  for (const name of names) {
    if (name.endsWith(".gz") || (name !== home.base && !name.startsWith(home.base))) continue
    const candidate = join(home.dir, name)
    const fd = openRead(candidate)
    if (fd === undefined) continue
    let keep = false
    try {
      const stat = Fs.fstatSync(fd)
      const excluded = options.exclude?.some((identity) => sameIdentity(identity, stat)) === true
      if (!excluded && stat.isFile() && stat.size >= minSize && matches(fd, print)) {
        // The same inode first (renamed), else the newest copy.
        const rank = options.prefer !== undefined && sameIdentity(options.prefer, stat) ? 1 : 0
        if (best === undefined || rank > best.rank || (rank === best.rank && stat.mtimeMs > best.sibling.stat.mtimeMs)) {
          if (best !== undefined) closeQuietly(best.sibling.fd)
          best = { sibling: { path: candidate, stat, fd }, rank }
          keep = true
        }
      }
    } catch {
      // Unreadable: not the one.
    }
    if (!keep) closeQuietly(fd)
  }
  return best?.sibling
}

/** Where `path` lives, for finding its siblings once it is gone. */
export const home = homeOf

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
export const headOf = (path: string, bytes: number): Buffer => {
  const fd = openRead(path)
  if (fd === undefined) return Buffer.alloc(0)
  try {
    const buffer = Buffer.alloc(bytes)
    const bytesRead = Fs.readSync(fd, buffer, 0, bytes, 0)
    return buffer.subarray(0, bytesRead)
  } catch {
    return Buffer.alloc(0)
  } finally {
    closeQuietly(fd)
  }
}

/** Whether two heads agree on their common length (an empty one agrees with anything). */
export const agree = (a: Buffer, b: Buffer): boolean => {
  const n = Math.min(a.length, b.length)
  return a.subarray(0, n).equals(b.subarray(0, n))
}
