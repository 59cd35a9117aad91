import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import type { FileFollower } from "../../../src/layers/inputs/containers/FileFollower.ts"
import type { Generation } from "../../../src/layers/inputs/containers/generations.ts"
import { Chunk } from "../../../src/layers/inputs/containers/receipts.ts"

/** What a chunk owes, as a model: offers not settled yet, by drain. */
type Step =
  | { readonly kind: "offer"; readonly endpoint: string }
  | { readonly kind: "settle"; readonly endpoint: string; readonly n: number }
  | { readonly kind: "forgive"; readonly endpoint: string }

const endpoint = fc.constantFrom("syslog://a", "syslog://b", "https://c", "es://d")
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: endpoint.map((endpoint) => ({ kind: "offer" as const, endpoint })) },
  { weight: 2, arbitrary: fc.tuple(endpoint, fc.integer({ min: 1, max: 4 })).map(([endpoint, n]) => ({ kind: "settle" as const, endpoint, n })) },
  { weight: 1, arbitrary: endpoint.map((endpoint) => ({ kind: "forgive" as const, endpoint })) }
)

describe("Chunk: what it owes each drain", () => {
  it("property: offers, settles (runs, capped at what is owed) and forgiveness by drain in any order keep the count of what is outstanding and the drains owed as a map would; settled once, when nothing is outstanding", () => {
    fc.assert(fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
      // A follower with this one chunk, routed: it settles when nothing is outstanding.
      const gen = {} as Generation
      const follower = {
        chunks: [] as Array<Chunk>,
        gen,
        behind: new Map(),
        restart: undefined,
        changed: () => {}
      } as unknown as FileFollower
      const chunk = new Chunk(follower, follower, gen, 0, 0, 0, 1)
      follower.chunks.push(chunk)
      chunk.offered("syslog://a")
      chunk.routed(["syslog://a"])
      const model = new Map<string, number>([["syslog://a", 1]])
      let forgiven = 0
      for (const s of steps) {
        if (follower.chunks.length === 0) break
        if (s.kind === "offer") {
          chunk.offered(s.endpoint)
          model.set(s.endpoint, (model.get(s.endpoint) ?? 0) + 1)
        } else if (s.kind === "settle") {
          chunk.settle(s.endpoint, s.n)
          const left = (model.get(s.endpoint) ?? 0) - s.n
          if (left > 0) model.set(s.endpoint, left)
          else model.delete(s.endpoint)
        } else {
          assert.strictEqual(chunk.forgive(s.endpoint), model.has(s.endpoint), `forgive ${s.endpoint}`)
          if (model.delete(s.endpoint)) forgiven++
        }
        const owed = [...model.values()].reduce((a, b) => a + b, 0)
        assert.strictEqual(chunk.outstanding, owed, `outstanding after ${JSON.stringify(s)}`)
        const drains = Array.from({ length: chunk.owing }, (_, i) => chunk.owingAt(i))
        assert.deepStrictEqual(drains.toSorted(), [...model.keys()].toSorted(), `drains owed after ${JSON.stringify(s)}`)
        // Settled (taken off its follower's list) exactly when nothing is owed any more — except
        // by forgiveness, which leaves that to its caller (receipts.forget).
        if (forgiven === 0) assert.strictEqual(follower.chunks.length, owed === 0 ? 0 : 1, `settled after ${JSON.stringify(s)}`)
      }
    }))
  })
})
