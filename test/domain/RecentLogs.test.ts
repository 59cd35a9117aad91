import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as R from "../../src/domain/RecentLogs.ts"

const packet = { time: new Date("2016-05-31T01:34:43.987Z"), hostname: "foo", tag: "web.v2.2ggow", message: "GET / 200", severity: 6, facility: 1 }

describe("recent logs", () => {
  it("writes Deis lines: the time to the second with an offset, app[tag]: message", () => {
    assert.strictEqual(R.formatLine(packet), "2016-05-31T01:34:43+00:00 foo[web.v2.2ggow]: GET / 200")
    assert.strictEqual(R.formatLine({ ...packet, message: "two\nlines\r\nhere" }), "2016-05-31T01:34:43+00:00 foo[web.v2.2ggow]: two lines here")
  })

  it("reads a Deis line back, and nothing else", () => {
    assert.deepStrictEqual(R.parseLine("2016-05-31T01:34:43+00:00 foo[web.v2.2ggow]: GET / 200 [ok]: yes"), {
      time: new Date("2016-05-31T01:34:43Z"),
      app: "foo",
      tag: "web.v2.2ggow",
      message: "GET / 200 [ok]: yes"
    })
    assert.strictEqual(R.parseLine("2016-05-31T01:34:43+00:00 deis[controller]: INFO hello")?.app, "deis")
    assert.isUndefined(R.parseLine("not a line"))
    assert.isUndefined(R.parseLine("2016-13-45T01:34:43+00:00 foo[x]: bad date"))
  })

  it("parses log_lines as deis/logger: absent or not a number is 100", () => {
    const table: ReadonlyArray<readonly [string | null, number]> = [
      [null, 100], ["", 100], ["abc", 100], ["12abc", 100], ["1.5", 100], ["99999999999999999999", 100],
      ["5", 5], [" 7 ", 7], ["+3", 3], ["0", 0], ["-4", 0], ["2500", 2500]
    ]
    for (const [text, n] of table) assert.strictEqual(R.parseLogLines(text), n, String(text))
  })

  it("a ring keeps the last `capacity` items, oldest first, whatever is pushed", () =>
    fc.assert(fc.property(fc.integer({ min: 0, max: 300 }), fc.array(fc.integer(), { maxLength: 1000 }), fc.integer({ min: -5, max: 400 }), (capacity, items, n) => {
      const ring = new R.Ring<number>(capacity)
      for (const item of items) ring.push(item)
      const kept = capacity === 0 ? [] : items.slice(-capacity)
      assert.strictEqual(ring.size, kept.length)
      assert.deepStrictEqual(ring.last(n), n <= 0 ? [] : kept.slice(-n))
    })))
})
