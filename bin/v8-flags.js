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
 */
export const sizeHeap = () => {
  if (typeof process.execve !== "function") return
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
  if (given.some((flag) => flag.startsWith("--max-old-space-size"))) return
  const mib = heapLimitMiB(process.env.MEMORY_LIMIT)
  if (mib === undefined) return
  process.execve(process.execPath, [process.execPath, ...process.execArgv, `--max-old-space-size=${mib}`, ...process.argv.slice(1)], process.env)
}
