/** The rate-limit annotation's syntax and the token bucket behind it. */
import { assert, describe, it } from "@effect/vitest"
import * as RateLimit from "../../src/domain/RateLimit.ts"

describe("rate limits", () => {
  it("reads <n>/s and <n>/m, with a burst or one second's worth", () => {
    assert.deepStrictEqual(RateLimit.parse("500/s"), { perSecond: 500, burst: 500 })
    assert.deepStrictEqual(RateLimit.parse(" 500 / s , burst = 2000 "), { perSecond: 500, burst: 2000 })
    assert.deepStrictEqual(RateLimit.parse("60/m"), { perSecond: 1, burst: 1 })
    assert.deepStrictEqual(RateLimit.parse("0.5/s"), { perSecond: 0.5, burst: 1 })
  })

  it("refuses anything else with a message saying what is expected", () => {
    for (const spec of ["", "500", "500/h", "-1/s", "0/s", "500/s,burst=0", "500/s,rate=2", "x".repeat(100), "1e3/s"]) {
      const parsed = RateLimit.parse(spec)
      assert.isTrue(RateLimit.isError(parsed), spec)
    }
    const error = RateLimit.parse("lots") as RateLimit.RateLimitError
    assert.include(error.message, "500/s,burst=2000")
  })

  it("a bucket lets its burst through at once, then its rate, and keeps no more than its burst while quiet", () => {
    const bucket = new RateLimit.TokenBucket("app", { perSecond: 10, burst: 5 }, 0)
    let passed = 0
    for (let i = 0; i < 100; i++) if (bucket.take(0)) passed++
    assert.strictEqual(passed, 5)
    // One second later: 10 more; a minute later, still only the burst.
    for (let i = 0; i < 100; i++) if (bucket.take(1000)) passed++
    assert.strictEqual(passed, 10)
    for (let i = 0; i < 100; i++) if (bucket.take(61_000)) passed++
    assert.strictEqual(passed, 15)
    assert.strictEqual(bucket.passed, 15)
    assert.strictEqual(bucket.dropped, 285)
    // Over a long run at 10x the rate: the rate.
    const steady = new RateLimit.TokenBucket("app", { perSecond: 100, burst: 100 }, 0)
    for (let t = 0; t < 10_000; t++) steady.take(t)
    assert.approximately(steady.passed, 100 + 100 * 10, 2)
  })

  it("the stricter of two limits is the lower rate", () => {
    assert.deepStrictEqual(RateLimit.stricter({ perSecond: 5, burst: 50 }, { perSecond: 10, burst: 1 }), { perSecond: 5, burst: 50 })
  })
})
