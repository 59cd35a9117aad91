import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as LogPacket from "../../src/domain/LogPacket.ts"
import type { Receipt } from "../../src/domain/Receipt.ts"
import * as Rfc5424 from "../../src/domain/syslog/Rfc5424.ts"
import * as Syslog from "../../src/domain/syslog/Syslog.ts"

const now = new Date("2024-03-01T12:00:00.000Z")

/** What format writes for the packets of the property below (their few values, checked by hand). */
const formattedByHand = (p: LogPacket.LogPacket) => {
  const sd = p.structuredData === "[a b=\"1\"]" ? p.structuredData : "-"
  const head = `<${p.facility * 8 + p.severity}>1 ${Number.isNaN(p.time.getTime()) ? "-" : p.time.toISOString()} ${
    p.hostname === "" ? "-" : p.hostname.replace(" ", "_")
  } ${p.tag.slice(0, 48)} ${p.procId ?? "-"} ${p.msgId ?? "-"} ${sd}`
  return p.message === "" ? head : `${head} ${p.message}`
}

describe("Rfc5424.format", () => {
  it("writes every header field, NILVALUE for the empty ones", () => {
    const packet = LogPacket.make({
      time: new Date("2024-01-02T03:04:05.678Z"),
      hostname: "api.default",
      tag: "api-7d9f",
      message: "GET / 200",
      severity: 3,
      facility: 16
    })
    assert.strictEqual(Rfc5424.format(packet), "<131>1 2024-01-02T03:04:05.678Z api.default api-7d9f - - - GET / 200")
  })

  it("forwards a decoded RFC 5424 line byte for byte", () => {
    const line = "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% do-nuts"
    const packet = Syslog.parse(line, now)
    assert.isFalse(Syslog.isParseError(packet))
    assert.strictEqual(Rfc5424.format(packet as LogPacket.LogPacket), line)
  })

  it("cuts header fields to the RFC limits and replaces characters that are not printable ASCII", () => {
    const packet = LogPacket.make({
      time: now,
      hostname: "h".repeat(300),
      tag: `my app ${"x".repeat(60)}`,
      message: "m"
    })
    const line = Rfc5424.format(packet)
    const parsed = Syslog.parse(line, now) as LogPacket.LogPacket
    assert.strictEqual(parsed.hostname, "h".repeat(255))
    assert.strictEqual(parsed.tag.length, 48)
    assert.isTrue(parsed.tag.startsWith("my_app_x"))
  })

  it("writes NILVALUE for an invalid date instead of throwing", () => {
    const packet = LogPacket.make({ time: new Date(Number.NaN), hostname: "h", tag: "t", message: "m" })
    assert.strictEqual(Rfc5424.format(packet), "<14>1 - h t - - - m")
  })

  it("drops structured data that is not well formed rather than writing an invalid message", () => {
    const packet = { ...LogPacket.make({ time: now, hostname: "h", tag: "t", message: "m" }), structuredData: "[oops" }
    assert.strictEqual(Rfc5424.format(packet), "<14>1 2024-03-01T12:00:00.000Z h t - - - m")
  })

  it("omits the space before an empty message", () => {
    const packet = LogPacket.make({ time: now, hostname: "h", tag: "t", message: "" })
    assert.strictEqual(Rfc5424.format(packet), "<14>1 2024-03-01T12:00:00.000Z h t - - -")
  })

  it("property: a packet formats the same whatever was formatted before it (the last header is reused, a file's tail is cached)", () => {
    // Few values per field, so that consecutive packets often share some fields and not others.
    const packetOf = fc.record({
      millis: fc.constantFrom(0, 1, 1000, 1_709_294_400_123, Number.NaN),
      hostname: fc.constantFrom("h", "api.default", "sp ace", ""),
      tag: fc.constantFrom("t", "web", "x".repeat(60)),
      procId: fc.constantFrom(undefined, "42"),
      msgId: fc.constantFrom(undefined, "ID1"),
      structuredData: fc.constantFrom(undefined, "", "[a b=\"1\"]", "[oops"),
      severity: fc.constantFrom(3, 6),
      facility: fc.constantFrom(1, 16),
      message: fc.constantFrom("m", "", "two words"),
      // A file's packets (with a receipt) have their tail cached by hostname; others do not.
      fromFile: fc.boolean()
    }).map((f) => ({
      ...LogPacket.make({ ...f, time: new Date(f.millis), receipt: f.fromFile ? ({} as Receipt) : undefined }),
      structuredData: f.structuredData
    }))
    fc.assert(fc.property(fc.array(packetOf, { minLength: 2, maxLength: 20 }), (packets) => {
      for (const packet of packets) assert.strictEqual(Rfc5424.format(packet), formattedByHand(packet))
    }))
  })
})

describe("structured data", () => {
  it("unescapes \\\" \\\\ and \\] in values and keeps other backslashes", () => {
    const elements = Rfc5424.parseStructuredData('[a@1 x="q\\"b\\\\s\\]e\\n"][b@2]')
    assert.deepStrictEqual(elements, [
      { id: "a@1", params: [["x", "q\"b\\s]e\\n"]] },
      { id: "b@2", params: [] }
    ])
  })

  it("escapes what needs escaping when formatting", () => {
    const text = Rfc5424.formatStructuredData([{ id: "meta@1", params: [["k", "a\"b]c\\d"]] }])
    assert.strictEqual(text, '[meta@1 k="a\\"b\\]c\\\\d"]')
    assert.deepStrictEqual(Rfc5424.parseStructuredData(text), [{ id: "meta@1", params: [["k", "a\"b]c\\d"]] }])
  })

  it("rejects malformed elements", () => {
    for (const bad of ["[", "[]", "[id", "[id k]", "[id k=v]", "[id k=\"v]", "x[id]", "[id] "]) {
      assert.isUndefined(Rfc5424.parseStructuredData(bad), bad)
    }
  })

  it("round-trips any elements", () => {
    const name = fc.stringMatching(/^[!#-<>-\\^-~]{1,32}$/)
    const element = fc.record({ id: name, params: fc.array(fc.tuple(name, fc.string({ unit: "binary" })), { maxLength: 4 }) })
    fc.assert(fc.property(fc.array(element, { minLength: 1, maxLength: 3 }), (elements) => {
      const text = Rfc5424.formatStructuredData(elements)
      assert.deepStrictEqual(Rfc5424.parseStructuredData(text), elements)
      assert.strictEqual(Rfc5424.structuredDataEnd(`${text} msg`, 0), text.length)
    }))
  })
})

const printable = (max: number) => fc.stringMatching(new RegExp(`^[!-~]{1,${max}}$`))
const arbitraryPacket = fc.record({
  time: fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true }),
  hostname: printable(255),
  tag: printable(48),
  message: fc.string({ unit: "grapheme", maxLength: 200 }).filter((m) => !m.startsWith("\ufeff")),
  severity: fc.integer({ min: 0, max: 7 }),
  facility: fc.integer({ min: 0, max: 23 }),
  procId: fc.option(printable(128), { nil: undefined }),
  msgId: fc.option(printable(32), { nil: undefined })
}).filter((p) => p.hostname !== "-" && p.tag !== "-" && p.procId !== "-" && p.msgId !== "-")

describe("RFC 5424 properties", () => {
  it("format then parse gives the packet back", () => {
    fc.assert(fc.property(arbitraryPacket, (fields) => {
      const packet = LogPacket.make(fields)
      const parsed = Syslog.parse(Rfc5424.format(packet), now)
      assert.isFalse(Syslog.isParseError(parsed))
      const p = parsed as LogPacket.LogPacket
      assert.strictEqual(p.time.getTime(), packet.time.getTime())
      assert.deepStrictEqual(
        [p.hostname, p.tag, p.message, p.severity, p.facility, p.procId, p.msgId],
        [packet.hostname, packet.tag, packet.message, packet.severity, packet.facility, packet.procId, packet.msgId]
      )
    }), { numRuns: 500 })
  })

  it("property: a timestamp reads as Date.parse reads it (or, where it cannot, as the time received)", () => {
    const seconds = fc.date({ min: new Date(-1e12), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 19))
    const timestamp = fc.tuple(
      fc.oneof(seconds, fc.constantFrom("2024-02-30T00:00:00", "2023-02-29T12:00:00", "2024-01-01T23:59:60", "2024-13-01T00:00:00", "2024-1-01T00:00:00x")),
      fc.oneof(fc.constant(""), fc.constant("."), fc.stringMatching(/^\.\d{1,12}$/)),
      fc.oneof(
        fc.constant("Z"),
        fc.tuple(fc.constantFrom("+", "-"), fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 61 }))
          .map(([sign, h, m]) => `${sign}${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`),
        fc.constantFrom("+0200", "+02", "z", "ZZ", "+02:0")
      )
    ).map((parts) => parts.join(""))
    // Several in a row: the second read once is kept for the lines after it.
    fc.assert(fc.property(fc.array(timestamp, { minLength: 1, maxLength: 4 }), (timestamps) => {
      for (const ts of timestamps) {
        const parsed = Syslog.parse(`<13>1 ${ts} host app - - - message`, now) as LogPacket.LogPacket
        const expected = Date.parse(ts)
        assert.strictEqual(parsed.time.getTime(), Number.isNaN(expected) ? now.getTime() : expected, ts)
      }
    }), { numRuns: 3000 })
  })

  it("a formatted timestamp always has a four-digit year, whatever the date (NILVALUE where none can be written)", () => {
    const edges = [-62_167_219_200_001, -62_167_219_200_000, -1, 0, 253_402_300_799_999, 253_402_300_800_000, 8.64e15, -8.64e15]
    const millis = fc.oneof(fc.constantFrom(...edges), fc.integer({ min: -8.64e15, max: 8.64e15 }))
    fc.assert(fc.property(millis, (ms) => {
      const text = Rfc5424.formatTimestamp(new Date(ms))
      const writable = ms >= -62_167_219_200_000 && ms <= 253_402_300_799_999
      if (writable) {
        assert.match(text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, String(ms))
        assert.strictEqual(Date.parse(text), ms)
      } else {
        assert.strictEqual(text, "-", String(ms))
      }
      const line = Rfc5424.format(LogPacket.make({ time: new Date(ms), hostname: "h", tag: "t", message: "m" }))
      assert.isFalse(Syslog.isParseError(Syslog.parse(line, now)), line)
    }), { numRuns: 2000 })
  })

  it("parsing never throws, whatever the text: it gives a packet or a parse error", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 300 }), (text) => {
      for (const line of [text, `<13>1 ${text}`, `<13>${text}`]) {
        const result = Syslog.parse(line, now)
        if (Syslog.isParseError(result)) assert.strictEqual(result._tag, "SyslogParseError")
        else assert.isString(result.message)
      }
    }), { numRuns: 2000 })
  })
})
