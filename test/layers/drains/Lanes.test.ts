import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import type * as LogPacket from "../../../src/domain/LogPacket.ts"
import { sourceHash } from "../../../src/layers/drains/Lanes.ts"

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
