import { assert, describe, it } from "@effect/vitest"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { frameBatch, HeldBytes } from "../../../src/layers/drains/syslog.ts"

const batch = (n: number, size: number) =>
  Array.from({ length: n }, (_, i) => LogPacket.make({ time: new Date(0), hostname: "h", tag: "t", message: `${i} ${"x".repeat(size)}` }))

describe("syslog drain: the bytes a confirming sender holds", () => {
  it("a batch that could not be written gives its room back, and with nothing else held the buffer goes", () => {
    const ring = new HeldBytes()
    // A receiver that is down: every retry puts the batch again. Before, each copy stayed, and the
    // buffer grew to its most (4 MiB) however long the drain retried.
    for (let retry = 0; retry < 50; retry++) {
      const view = ring.put(frameBatch(batch(100, 1000), "newline"))
      assert.isAbove(ring.allocated, 0)
      ring.takeBack(view, true)
      assert.strictEqual(ring.allocated, 0)
    }
  })

  it("what is held for confirmation stays: only the last, unwritten bytes are taken back", () => {
    const ring = new HeldBytes()
    const written = ring.put(frameBatch(batch(10, 100), "newline"))
    const copy = Buffer.from(written)
    const failed = ring.put(frameBatch(batch(10, 100), "newline"))
    ring.takeBack(failed, false)
    assert.isAbove(ring.allocated, 0)
    const next = ring.put(frameBatch(batch(10, 200), "newline"))
    assert.strictEqual(next.byteOffset, written.byteOffset + written.byteLength, "the failed batch's room is used again")
    assert.isTrue(Buffer.from(written).equals(copy), "what was written is untouched")
  })
})
