import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { Lane, sourceHash } from "../../../src/layers/drains/Lanes.ts"

/** FNV-1a over hostname, a separator and tag, computed afresh. */
const fnv = (hostname: string, tag: string): number => {
  let h = 0x811c9dc5
  for (const c of `${hostname}\u001f${tag}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193)
  return h >>> 0
}

const packet = (hostname: string, tag: string) => ({ hostname, tag }) as LogPacket.LogPacket

describe("Lanes.sourceHash", () => {
  it("property: a source's hash is its names' FNV-1a, whatever was hashed before (the last one is remembered)", () => {
    const name = fc.constantFrom("app", "app-1", "app-10", "", "ü", "web")
    fc.assert(fc.property(fc.array(fc.tuple(name, name), { minLength: 1, maxLength: 20 }), (sources) => {
      for (const [hostname, tag] of sources) {
        // Equal names as other string objects too: the same hash.
        assert.strictEqual(sourceHash(packet(hostname, tag)), fnv(hostname, tag), `${hostname}/${tag}`)
        assert.strictEqual(sourceHash(packet([...hostname].join(""), tag.slice())), fnv(hostname, tag))
      }
    }))
  })
})

const numbered = (i: number) => ({ hostname: `h${i % 3}`, tag: "t", raw: "x".repeat(1 + (i % 5)), n: i }) as unknown as LogPacket.LogPacket
const n = (p: LogPacket.LogPacket) => (p as unknown as { n: number }).n

describe("Lane", () => {
  it("property: packets come out in the order they went in, in batches bounded by count and bytes, whatever the pushes and takes (the ring wraps and grows)", () => {
    fc.assert(fc.property(
      fc.array(fc.oneof(fc.integer({ min: 1, max: 40 }).map((k) => ({ push: k })), fc.record({ take: fc.integer({ min: 1, max: 30 }), bytes: fc.integer({ min: 1, max: 60 }) })), { maxLength: 60 }),
      fc.boolean(),
      (steps, clearAtEnd) => {
        const lane = new Lane()
        const model: Array<LogPacket.LogPacket> = []
        let next = 0
        for (const step of steps) {
          if ("push" in step) {
            for (let i = 0; i < step.push; i++) {
              const packet = numbered(next++)
              lane.push(packet, LogPacket.approximateBytes(packet))
              model.push(packet)
            }
          } else {
            const batch = lane.take(step.take, step.bytes)
            let bytes = 0
            for (const [i, packet] of batch.entries()) {
              const size = LogPacket.approximateBytes(packet)
              if (i > 0) assert.isAtMost(bytes + size, step.bytes)
              bytes += size
            }
            assert.isAtMost(batch.length, step.take)
            if (model.length > 0) assert.isAtLeast(batch.length, 1)
            assert.deepStrictEqual(batch.map(n), model.splice(0, batch.length).map(n))
            assert.strictEqual(lane.takenBytes, bytes)
          }
          assert.strictEqual(lane.length, model.length)
          assert.strictEqual(lane.bytes, model.reduce((sum, p) => sum + LogPacket.approximateBytes(p), 0))
        }
        if (clearAtEnd) assert.deepStrictEqual(lane.clear().map(n), model.map(n))
        else assert.deepStrictEqual(lane.take(1000, Number.POSITIVE_INFINITY).map(n), model.map(n))
        assert.strictEqual(lane.length, 0)
      }
    ))
  })
})
