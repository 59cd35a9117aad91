import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { parseBytes } from "../../src/layers/ConfigValues.ts"
import * as MemoryBudget from "../../src/layers/MemoryBudget.ts"
import { heapLimitMiB } from "../../src/layers/MemoryLimit.ts"

const MiB = 1024 * 1024

/** A file system of these files only. */
const files = (entries: Record<string, string>) => (path: string) => {
  const text = entries[path]
  if (text === undefined) throw new Error("ENOENT")
  return text
}

describe("MemoryBudget", () => {
  it("reads the container's limit from cgroup v2, then v1; 'max' and v1's huge number mean none", () => {
    assert.strictEqual(MemoryBudget.cgroupLimit(files({ "/sys/fs/cgroup/memory.max": "134217728\n" })), 128 * MiB)
    assert.strictEqual(MemoryBudget.cgroupLimit(files({ "/sys/fs/cgroup/memory.max": "max\n" })), undefined)
    assert.strictEqual(
      MemoryBudget.cgroupLimit(files({ "/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456" })),
      256 * MiB
    )
    assert.strictEqual(
      MemoryBudget.cgroupLimit(files({ "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712" })),
      undefined
    )
    assert.strictEqual(MemoryBudget.cgroupLimit(files({})), undefined)
  })

  it("defaults to half of what the container's limit leaves past the runtime's floor, and to 64 MiB without one", () => {
    assert.strictEqual(MemoryBudget.defaultLimit(128 * MiB), (128 * MiB - MemoryBudget.RUNTIME_FLOOR) / 2)
    assert.strictEqual(MemoryBudget.defaultLimit(undefined), 64 * MiB)
    assert.strictEqual(MemoryBudget.defaultLimit(96 * MiB), MemoryBudget.MIN_LIMIT)
  })

  it("sizes V8's heap from the budget when there is a limit, and leaves it to V8 when there is none", () => {
    assert.strictEqual(heapLimitMiB(undefined, 128 * MiB), 16 + 24)
    assert.strictEqual(heapLimitMiB("64Mi", undefined), 64 + 24)
    assert.strictEqual(heapLimitMiB("64Mi", 128 * MiB), 64 + 24, "MEMORY_LIMIT wins")
    assert.isUndefined(heapLimitMiB(undefined, undefined))
    assert.isUndefined(heapLimitMiB("lots", 128 * MiB), "a bad MEMORY_LIMIT is the configuration's to report")
  })

  it("reads sizes as Kubernetes writes them, or in bytes", () => {
    assert.strictEqual(parseBytes("128Mi"), 128 * MiB)
    assert.strictEqual(parseBytes("64M"), 64_000_000)
    assert.strictEqual(parseBytes("1.5Gi"), 1.5 * 1024 * MiB)
    assert.strictEqual(parseBytes(" 512KiB "), 512 * 1024)
    assert.strictEqual(parseBytes("1000"), 1000)
    assert.strictEqual(parseBytes("12 parsecs"), undefined)
    assert.strictEqual(parseBytes("-5Mi"), undefined)
  })

  it("splits the budget: an eighth to the ingest queue, HTTP bodies set aside, the rest to drains", () => {
    const budget = MemoryBudget.make(32 * MiB, { httpBodies: 8 * MiB })
    assert.strictEqual(budget.ingest, 4 * MiB)
    assert.strictEqual(budget.drains.bytes, 20 * MiB)
  })

  it("a drain alone may take three quarters of the drains' share while it delivers, half while it fails", () => {
    const pool = new MemoryBudget.Pool(1000)
    const a = pool.join()
    assert.isTrue(a.fits(750))
    assert.isFalse(a.fits(751))
    a.take(740)
    assert.isTrue(a.fits(10))
    assert.isFalse(a.fits(11))
    a.healthy = false
    assert.isFalse(a.fits(1))
    a.give(250)
    assert.isTrue(a.fits(10))
  })

  it("failing drains cannot starve one that delivers: it keeps a quarter, and together they stay within the share", () => {
    const pool = new MemoryBudget.Pool(1000)
    const dead = [pool.join(), pool.join(), pool.join()]
    const live = pool.join()
    for (const account of dead) account.healthy = false
    for (const account of dead) {
      while (account.fits(10)) account.take(10)
    }
    assert.strictEqual(pool.total, 500)
    while (live.fits(5)) live.take(5)
    assert.isAtLeast(live.bytes, 250 - 5, "a quarter of the share, whatever the failing drains hold")
    assert.isAtMost(pool.total, 1000)
    // Healthy drains fill their guarantees (four members: 1000 / 16 = 62.5 each): still within the share.
    for (const account of dead) account.healthy = true
    for (const account of [...dead, live]) {
      while (account.fits(1)) account.take(1)
    }
    assert.isAtMost(pool.total, 1000)
    // What is given back can be taken again.
    dead[0]!.give(dead[0]!.bytes)
    live.give(100)
    assert.isTrue(live.fits(100))
  })

  it.effect("a drain that leaves gives back what it held, and waiters for room wake", () =>
    Effect.gen(function*() {
      const pool = new MemoryBudget.Pool(100)
      const a = pool.join()
      a.take(100)
      const waiting = yield* Effect.forkChild(pool.until(() => pool.total <= 50))
      yield* Effect.yieldNow
      assert.isUndefined(waiting.pollUnsafe())
      a.give(40)
      yield* Effect.yieldNow
      assert.isUndefined(waiting.pollUnsafe(), "60 held is still more than 50")
      a.leave()
      yield* Fiber.join(waiting)
      assert.deepStrictEqual([pool.total, pool.members], [0, 0])
    }))
})
