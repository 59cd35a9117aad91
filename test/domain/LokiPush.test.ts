import { assert, describe, it } from "@effect/vitest"
import * as LogPacket from "../../src/domain/LogPacket.ts"
import * as LokiPush from "../../src/domain/LokiPush.ts"

const packet = (ms: number, fields: Partial<LogPacket.LogPacketFields> = {}) =>
  LogPacket.make({ time: new Date(ms), hostname: "web.shop", tag: "web-1", message: `at ${ms}`, ...fields })

const structured: LokiPush.PushOptions = { labels: [], metadata: "structured" }

describe("LokiPush.encode", () => {
  it("writes one stream per label set, entries sorted by time with ties on consecutive nanoseconds", () => {
    const clocks = new Map<string, LokiPush.StreamClock>()
    const body = JSON.parse(LokiPush.encode([packet(5), packet(3, { hostname: "db" }), packet(3), packet(3)], structured, clocks))
    assert.deepStrictEqual(body, {
      streams: [
        {
          stream: { app: "web.shop" },
          values: [
            ["3000000", "at 3", { level: "info", tag: "web-1", facility: "user" }],
            ["3000001", "at 3", { level: "info", tag: "web-1", facility: "user" }],
            ["5000000", "at 5", { level: "info", tag: "web-1", facility: "user" }]
          ]
        },
        { stream: { app: "db" }, values: [["3000000", "at 3", { level: "info", tag: "web-1", facility: "user" }]] }
      ]
    })
    // The next batch goes on from each stream's last time.
    const next = JSON.parse(LokiPush.encode([packet(5), packet(3, { hostname: "db" })], structured, clocks))
    assert.deepStrictEqual(next.streams.map((s: { values: Array<Array<string>> }) => s.values[0]![0]), ["5000001", "3000001"])
  })

  it("escapes lines and metadata as JSON, cuts long label values, and writes logfmt lines", () => {
    const tricky = packet(1, { message: "quote \" backslash \\ newline \n ünï ✓", tag: "t\"1", hostname: "h".repeat(3000) })
    const body = JSON.parse(LokiPush.encode([tricky], { labels: ["tag"], metadata: "structured" }, new Map()))
    assert.strictEqual(body.streams[0].stream.app.length, 1024)
    assert.strictEqual(body.streams[0].stream.tag, "t\"1")
    assert.strictEqual(body.streams[0].values[0][1], tricky.message)
    const line = JSON.parse(LokiPush.encode([tricky], { labels: [], metadata: "line" }, new Map()))
    assert.deepStrictEqual(line.streams[0].values[0], ["1000000", "level=info tag=\"t\\\"1\" facility=user msg=\"quote \\\" backslash \\\\ newline \\n ünï ✓\""])
  })
})

describe("LokiPush.readRefusal", () => {
  it("counts the entries Loki's ingester says it ignored", () => {
    const current = "entry with timestamp 2026-01-01 00:00:00.05 +0000 UTC ignored, reason: 'entry out of order',\n" +
      "entry with timestamp 2026-01-01 00:00:00.06 +0000 UTC ignored, reason: 'entry out of order',\n" +
      "user 'fake', total ignored: 2 out of 3 for stream: {app=\"web.shop\"}"
    assert.deepStrictEqual(LokiPush.readRefusal(current), { reason: "out_of_order", count: 2 })
    const older = "entry with timestamp 1970-01-01 00:00:00 +0000 UTC ignored, reason: 'entry out of order' for stream: {foo=\"bar\"},\ntotal ignored: 5 out of 5"
    assert.deepStrictEqual(LokiPush.readRefusal(older), { reason: "out_of_order", count: 5 })
    const behind = "entry with timestamp 2026-01-01 ignored, reason: 'entry too far behind, entry timestamp is: 2026-01-01T00:00:00Z, oldest acceptable timestamp is: 2026-01-01T01:00:00Z',\n" +
      "user 'fake', total ignored: 1 out of 10 for stream: {app=\"a\"}"
    assert.deepStrictEqual(LokiPush.readRefusal(behind), { reason: "too_far_behind", count: 1 })
  })

  it("names the distributor's refusals by Loki's reasons; per-entry ones counted, the rest the whole batch", () => {
    const tooLong = "Max entry size '262144' bytes exceeded for stream '{app=\"a\"}' while adding an entry with length '300000' bytes\n" +
      "Max entry size '262144' bytes exceeded for stream '{app=\"a\"}' while adding an entry with length '400000' bytes"
    assert.deepStrictEqual(LokiPush.readRefusal(tooLong), { reason: "line_too_long", count: 2 })
    assert.deepStrictEqual(LokiPush.readRefusal("entry for stream '{app=\"a\"}' has timestamp too old: 2020-01-01, oldest acceptable timestamp is: 2026-01-01"), {
      reason: "greater_than_max_sample_age",
      count: 1
    })
    assert.deepStrictEqual(LokiPush.readRefusal("stream '{app=\"a\"}' includes structured metadata, but this feature is disallowed."), {
      reason: "disallowed_structured_metadata",
      count: undefined
    })
    assert.deepStrictEqual(LokiPush.readRefusal("something Loki never said"), { reason: "http_400", count: undefined })
  })
})
