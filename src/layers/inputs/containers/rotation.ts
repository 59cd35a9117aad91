/**
 * What a change of the path means for a follower's generations. Renamed away: the path names
 * another file; the old one is read to its end, then the new one (and any rotated in between).
 * Copytruncate: the live file shrank, or its first bytes changed; its generation goes on in the
 * copy (a sibling with the same first bytes), and the live file becomes a new generation.
 */
import * as Fs from "node:fs"
import type { FileFollower } from "./FileFollower.ts"
import * as Files from "./files.ts"
import { Generation } from "./generations.ts"

/** The path names another file: the live one was renamed away. */
export const renamed = (follower: FileFollower): void => {
  const old = follower.live!
  const fd = Files.openRead(follower.path)
  if (fd === undefined) return
  const stat = Fs.fstatSync(fd)
  const last = Fs.fstatSync(old.fd!)
  old.size = last.size
  old.mtimeMs = last.mtimeMs
  // Rotated more than once since the last look: the files in between too (written after the
  // old one's last write).
  const between = Files.rotatedSince(follower.path, last.mtimeMs, [stat, ...known(follower)])
  for (const file of between) adopt(follower, file.path, file.stat)
  follower.gens.push(new Generation(follower.nextSeq++, fd, stat, Files.fingerprintOf(fd, stat.size), stat.mtimeMs))
  follower.counts.renames += 1 + between.length
  follower.renamedSince = undefined
  follower.quietMtime = Number.NaN
}

/** A rotated file found next to the live one: a generation of its own, read whole. */
const adopt = (follower: FileFollower, path: string, stat: Fs.Stats): void => {
  const fd = Files.openRead(path)
  if (fd === undefined) return
  const gen = new Generation(follower.nextSeq++, fd, stat, Files.fingerprintOf(fd, stat.size), stat.mtimeMs)
  gen.size = stat.size
  follower.gens.push(gen)
}

/**
 * The live file was truncated (copytruncate): its generation goes on in the copy — a file next
 * to it that begins with the same bytes and holds at least what was read — and the live file is
 * a new generation. Copies made in between (truncated twice between two looks) are read whole.
 */
export const truncated = (follower: FileFollower, stat: Fs.Stats): void => {
  const gen = follower.live!
  const readUpTo = follower.gen === gen ? follower.reader.offset : 0
  const seen = known(follower)
  const copy = Files.findByFingerprint(follower.path, gen.print, readUpTo, { exclude: seen })
  const liveFd = gen.fd!
  follower.counts.truncations++
  if (copy === undefined) {
    follower.counts.unrecovered++
    gen.fd = undefined
    gen.size = readUpTo
    // No file of its own (its inode is the live file's): never one of the files read to their end.
    gen.mtimeMs = 0
  } else {
    gen.fd = copy.fd
    gen.identity = copy.stat
    gen.size = copy.stat.size
    gen.mtimeMs = copy.stat.mtimeMs
  }
  const livePrint = Files.fingerprintOf(liveFd, stat.size)
  if (copy !== undefined) {
    const unseen = Files.rotatedSince(follower.path, copy.stat.mtimeMs, [stat, copy.stat, ...seen])
      .filter((file) => livePrint.prefix.length === 0 || !Files.agree(Files.headOf(file.path, Files.FINGERPRINT_BYTES), livePrint.prefix))
    for (const file of unseen) {
      adopt(follower, file.path, file.stat)
      follower.counts.truncations++
    }
  }
  follower.gens.push(new Generation(follower.nextSeq++, liveFd, stat, livePrint, stat.mtimeMs))
  follower.quietMtime = Number.NaN
}

/** Files that are, or were, generations of this one. */
const known = (follower: FileFollower): Array<Files.Identity> => [...follower.gens.map((gen) => gen.identity), ...follower.consumed]

/**
 * The live file was empty when it became a generation, and nothing of it was read: without first
 * bytes to tell, a truncation since then cannot be seen in it. Copies made since it began that
 * do not begin as it does now (`head`: its first bytes, or those just read of it) are generations
 * that came and went before this look: they go before it, read whole. Returns whether there were any.
 */
export const unseenBefore = (
  follower: FileFollower,
  live: Generation,
  head: Buffer = Files.headOf(follower.path, Files.FINGERPRINT_BYTES)
): boolean => {
  const unseen = Files.rotatedSince(follower.path, live.mtimeMs, known(follower))
    .filter((file) => head.length === 0 || !Files.agree(Files.headOf(file.path, Files.FINGERPRINT_BYTES), head))
  if (unseen.length === 0) return false
  follower.gens.pop()
  const at = follower.gens.length
  for (const file of unseen) {
    adopt(follower, file.path, file.stat)
    follower.counts.truncations++
  }
  const adopted = follower.gens.length > at
  follower.gens.push(live)
  if (!adopted) return false
  live.seq = follower.nextSeq++
  follower.gen = follower.gens[at]!
  follower.reader = follower.readerAt(0)
  follower.lastPos = Number.NEGATIVE_INFINITY
  return true
}
