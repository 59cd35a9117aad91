/**
 * The memory limit, as the process learns it before anything else is loaded: MEMORY_LIMIT, or the
 * container's cgroup limit. Plain functions without Effect, so that the bin script can size V8's
 * heap from it (`heapLimitMiB`) and start again with that size before it loads the program.
 * MemoryBudget.ts splits the limit between the holders of log data.
 */
import { readFileSync } from "node:fs"

/**
 * What the process takes besides the log data it holds: the bundle at rest (72-85 MB) and what
 * running at full speed adds whatever the budget (code compiled, buffers of connections and
 * files, garbage between collections). Measured with npm run bench -- --only stress (README,
 * Memory): with 24 MiB of budget the peak was 132-138 MiB, with 16 MiB 126 MiB.
 */
export const RUNTIME_FLOOR = 96 * 1024 * 1024

/** The budget when no container limit is found. */
export const DEFAULT_LIMIT = 64 * 1024 * 1024

/** The smallest budget MEMORY_LIMIT may set. */
export const MIN_LIMIT = 4 * 1024 * 1024

/**
 * V8's old generation holds, besides the budget's log data, what the program itself keeps (15 MB
 * at rest, /metrics' nodejs_heap_size_used_bytes), what is in flight (read and not yet buffered),
 * and the garbage between collections. 16 MiB was too little: with a 16 MiB budget the stress
 * benchmark had 30 MB live and V8 stopped the process (heap out of memory). With 32 MiB (a 48 MiB
 * heap) its peak RSS was 144 MiB: V8 uses what it may. 24 MiB: see the README, Memory.
 */
export const HEAP_BESIDES_BUDGET = 24 * 1024 * 1024

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  ki: 1024,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gi: 1024 ** 3,
  gib: 1024 ** 3
}
const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/

/** A size in bytes: `134217728`, `128Mi`, `64M`, `1.5Gi`, `512KiB`; undefined if it is not one. */
export const parseBytes = (text: string): number | undefined => {
  const match = SIZE.exec(text.trim().toLowerCase())
  if (match === null) return undefined
  const unit = SIZE_UNITS[match[2]!]
  return unit === undefined ? undefined : Math.floor(Number(match[1]) * unit)
}

/** The container's memory limit in bytes (cgroup v2, else v1), if it has one. */
export const cgroupLimit = (read: (path: string) => string = (path) => readFileSync(path, "utf8")): number | undefined => {
  for (const path of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    let text: string
    try {
      text = read(path).trim()
    } catch {
      continue
    }
    const bytes = Number(text)
    // "max" (v2) or a huge number (v1: 2^63 rounded to pages) mean no limit.
    if (Number.isSafeInteger(bytes) && bytes > 0) return bytes
    return undefined
  }
  return undefined
}

/**
 * The default budget: what a container's limit leaves past the runtime's floor, halved, because a
 * garbage-collected heap holds the garbage of what it freed beside what is live; DEFAULT_LIMIT
 * without a container limit.
 */
export const defaultLimit = (containerLimit: number | undefined): number =>
  containerLimit === undefined ? DEFAULT_LIMIT : Math.max(MIN_LIMIT, Math.floor((containerLimit - RUNTIME_FLOOR) / 2))

/**
 * V8's old generation for a process with a memory limit (MEMORY_LIMIT, or a container's): the
 * budget and HEAP_BESIDES_BUDGET, in MiB. Undefined when there is no limit (then V8 picks its own,
 * from the machine's memory) or MEMORY_LIMIT cannot be read (the configuration says why, later).
 */
export const heapLimitMiB = (memoryLimit: string | undefined, containerLimit: number | undefined = cgroupLimit()): number | undefined => {
  const budget = memoryLimit === undefined
    ? (containerLimit === undefined ? undefined : defaultLimit(containerLimit))
    : parseBytes(memoryLimit)
  if (budget === undefined || budget < MIN_LIMIT) return undefined
  return Math.ceil((budget + HEAP_BESIDES_BUDGET) / (1024 * 1024))
}
