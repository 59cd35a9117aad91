import { assert, describe, it } from "@effect/vitest"
import { naturalOrder } from "../../../src/layers/inputs/containers/files.ts"

describe("rotated file names in natural order", () => {
  it("numbers by value, the rest by character, shorter first", () => {
    const names = [
      "0.log.10",
      "0.log.9",
      "0.log.20240101-000010",
      "0.log.20240101-000009",
      "app-json.log.2",
      "app-json.log.11",
      "app-json.log",
      "0.log.1",
      "0.log.99999999999999999999999",
      "0.log.100000000000000000000000"
    ]
    assert.deepStrictEqual(names.toSorted(naturalOrder), [
      "0.log.1",
      "0.log.9",
      "0.log.10",
      "0.log.20240101-000009",
      "0.log.20240101-000010",
      "0.log.99999999999999999999999",
      "0.log.100000000000000000000000",
      "app-json.log",
      "app-json.log.2",
      "app-json.log.11"
    ])
    assert.strictEqual(naturalOrder("0.log.7", "0.log.7"), 0)
    assert.isBelow(naturalOrder("a", "b"), 0)
    assert.isAbove(naturalOrder("b", "a"), 0)
  })
})
