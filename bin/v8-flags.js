// V8 settings shared by logtrain's programs; each calls `tuneV8` before it starts. (Read by the
// GC when it applies them; Node refuses these flags in NODE_OPTIONS.)
import { setFlagsFromString } from "node:v8"
import { heapLimitMiB } from "../src/layers/MemoryLimit.ts"

export const tuneV8 = () => {
  // V8 may decide that objects made at a busy allocation site live long and make them in the old
  // generation from then on ("pretenuring"). For a router, whose packets live for milliseconds,
  // that fills the old generation with garbage: the TCP relay ran at 0.53-0.57M lines/s and peaked
  // at 142-148 MB with it, 0.86-0.92M and 96-98 MB without (npm run bench -- --only relay).
  // Whether V8 makes that decision depends on what else is in the heap, so it is turned off.
  setFlagsFromString("--no-allocation-site-pretenuring")
  // After each full GC, V8 lets the old generation grow by a factor it picks from how fast the GC
  // runs: with ~16 MB live it let a busy file tail grow to ~70 MB of mostly dead packets before
  // collecting. Twice what is live instead: the file tail's peak RSS 138-142 -> 109-113 MB, its
  // lines/s unchanged (npm run bench -- --only relay,files --relays logtrain, 3 rounds each).
  setFlagsFromString("--heap-growing-percent=100")
  // Under a memory limit only (MEMORY_LIMIT, or a container's), no Turbofan: V8's top tier, which its mid tier (Maglev) serves nearly as well here, costs
  // memory once it runs at all — its compiler's pages of the node binary (~6 MB resident once
  // used) and its compilations' memory. Given on the command line as --max-opt=2 (same hour,
  // alternating): the reference workload (npm run bench -- --only reference) 89.4-89.7 MB on
  // average and 92.8-93.4 peak against 94.9-97.6 and 99.8-101.0 (the binary's resident pages
  // 46.7 MB against 52.1), CPU 4.5-7.3 % against 5.6-7.8 %; the TCP relay (--only relay --relays
  // logtrain --lines 1000000, 3 rounds) 2.55-2.73 CPU-s per million lines against 2.29-2.64.
  // Set here, after start, --max-opt=2 does not hold (V8 derives "no Turbofan" from it only when
  // it starts: --trace-opt still showed Turbofan compiling); --no-turbofan does: the reference
  // workload 89.6-91.0 MB on average, 93.6-94.6 peak, against 97.6-98.1 and 102.3-102.6 without.
  // Without a limit, speed wins: Turbofan stays.
  if (heapLimitMiB(process.env.MEMORY_LIMIT) !== undefined) setFlagsFromString("--no-turbofan")
}

/**
 * With a memory limit (MEMORY_LIMIT, or the container's cgroup limit), V8's old generation is sized
 * from it (MemoryLimit.heapLimitMiB), so that V8 collects harder as it nears it rather than let
 * garbage take the container past its limit: in the stress benchmark at 128Mi, peak RSS went from
 * 174-199 MiB to 132-138 MiB with it (npm run bench -- --only stress). The heap's size is fixed
 * when V8 starts (v8.setFlagsFromString cannot change it), so the process starts again with it,
 * in place (process.execve: same PID, nothing loaded yet); not when it was given already
 * (--max-old-space-size on the command line or in NODE_OPTIONS), or where execve is missing
 * (Node < 22.15, Windows).
 *
 * With it, the young generation goes down to 1 MB a semi-space (NODE_OPTIONS' 4, the image's
 * setting without a limit, is overridden; a --max-semi-space-size on the command line is kept):
 * the stress benchmark's peak RSS 139.9 -> 129.0-131.9 MiB, the reference workload 2-4 MB less;
 * the price is CPU per line at full speed, its garbage collected four times as often (the TCP
 * relay 2.34-2.64 CPU-s per million lines against 1.80-2.10 with 4) — paid only where memory is
 * what is scarce.
 */
export const sizeHeap = () => {
  if (typeof process.execve !== "function") return
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
  if (given.some((flag) => flag.startsWith("--max-old-space-size"))) return
  const mib = heapLimitMiB(process.env.MEMORY_LIMIT)
  if (mib === undefined) return
  const youngGiven = process.execArgv.some((flag) => flag.startsWith("--max-semi-space-size"))
  const flags = [`--max-old-space-size=${mib}`, ...(youngGiven ? [] : ["--max-semi-space-size=1"])]
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...flags, ...process.argv.slice(1)], process.env)
}
