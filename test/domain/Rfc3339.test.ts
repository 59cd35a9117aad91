import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Rfc3339 from "../../src/domain/Rfc3339.ts"

/** Milliseconds as text, so that NaN equals NaN. */
const ms = (n: number): string => String(n)

describe("Rfc3339.parse", () => {
  it("reads what Date.parse reads, whether or not the line before shared its second", () => {
    const texts = [
      "2024-01-01T00:00:00Z",
      "2024-01-01T00:00:00.5Z",
      "2024-01-01T00:00:00.123456789Z",
      "2024-01-01T00:00:00.123456789z",
      "2024-01-01T00:00:00.1234567891Z", // ten digits: not the usual shape, Date.parse decides
      "2024-01-01T00:00:01.999+02:00",
      "2024-01-01T00:00:01.999-11:30",
      "2024-02-29T23:59:59.000001Z",
      "2023-02-29T23:59:59Z", // no such day
      "2024-01-01T24:00:00Z",
      "2024-01-01T00:00:00",
      "2024-01-01T00:00:00.Z",
      "2024-01-01T00:00:00+2:00",
      "2024-01-01 00:00:00Z",
      "2024-01-01",
      "",
      "garbage"
    ]
    // Twice over, and each text right after every other: the second remembered must never leak.
    for (const before of texts) {
      for (const text of texts) {
        Rfc3339.parse(before)
        assert.strictEqual(ms(Rfc3339.parse(text)), ms(Date.parse(text)), `${text} after ${before}`)
      }
    }
  })

  it("reads a range of a longer text as Date.parse reads that range alone", () => {
    const line = "2024-01-01T00:00:00.25Z stdout F hello"
    for (const end of [23, 22, 21, 20, 19, 10]) {
      Rfc3339.parse(line, 0, 23) // the second is remembered: the range must still end where it says
      assert.strictEqual(ms(Rfc3339.parse(line, 0, end)), ms(Date.parse(line.slice(0, end))), `[0, ${end})`)
    }
    assert.strictEqual(ms(Rfc3339.parse("2024-01-01T00:00:00+01:00x", 0, 25)), ms(Date.parse("2024-01-01T00:00:00+01:00")), "offset")
    assert.strictEqual(ms(Rfc3339.parse("2024-01-01T00:00:00+01:00x", 0, 24)), ms(Date.parse("2024-01-01T00:00:00+01:0")), "cut offset")
  })

  it("agrees with Date.parse on generated times", () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true }),
        fc.integer({ min: 0, max: 9 }),
        fc.constantFrom("Z", "+00:00", "+05:45", "-08:00"),
        (date, digits, zone) => {
          const iso = date.toISOString()
          const fraction = digits === 0 ? "" : `.${iso.slice(20, 23).padEnd(digits, "7").slice(0, digits)}`
          const text = `${iso.slice(0, 19)}${fraction}${zone}`
          assert.strictEqual(ms(Rfc3339.parse(text)), ms(Date.parse(text)), text)
          assert.strictEqual(ms(Rfc3339.parse(`x ${text} y`, 2, 2 + text.length)), ms(Date.parse(text)), `${text} in a line`)
        }
      ),
      { numRuns: 2000 }
    )
  })

  it("parseBytes reads a text's bytes as parse reads the text, with the same second remembered", () => {
    const texts = [
      "2024-01-01T00:00:00Z",
      "2024-01-01T00:00:00.5Z",
      "2024-01-01T00:00:00.123456789Z",
      "2024-01-01T00:00:00.123456789z",
      "2024-01-01T00:00:00.1234567891Z",
      "2024-01-01T00:00:01.999+02:00",
      "2024-01-01T00:00:01.999-11:30",
      "2023-02-29T23:59:59Z",
      "2024-01-01T24:00:00Z",
      "2024-01-01T00:00:00",
      "2024-01-01T00:00:00.Z",
      "2024-01-01T00:00:00+2:00",
      "2024-01-01 00:00:00Z",
      "2024-01-01T00:00:0é.1Z",
      "２024-01-01T00:00:00Z",
      "2024-01-01",
      "",
      "garbage"
    ]
    for (const before of texts) {
      for (const text of texts) {
        Rfc3339.parseBytes(Buffer.from(before), 0, Buffer.byteLength(before))
        const bytes = Buffer.from(`x ${text} y`)
        assert.strictEqual(ms(Rfc3339.parseBytes(bytes, 2, 2 + Buffer.byteLength(text))), ms(Date.parse(text)), `${text} after ${before}`)
      }
    }
    // A second that differs from the one before in one character only, wherever it is (the second
    // is compared a word at a time); fractions of nine digits with one not a digit.
    const base = "2024-01-01T00:00:00.123456789Z"
    const variants = [base, "2024-01-01T00:00:00.12345678xZ", "2024-01-01T00:00:00.1234x6789Z", "2024-01-01T00:00:00.x23456789Z"]
    for (let i = 0; i < 19; i++) {
      const c = base.charCodeAt(i)
      if (c >= 48 && c <= 57) variants.push(`${base.slice(0, i)}${c === 57 ? 1 : c - 47}${base.slice(i + 1)}`)
    }
    for (const text of variants) {
      Rfc3339.parseBytes(Buffer.from(base), 0, base.length)
      assert.strictEqual(ms(Rfc3339.parseBytes(Buffer.from(`x ${text} y`), 2, 2 + text.length)), ms(Date.parse(text)), `${text} after ${base}`)
    }
    // A range past the end of the bytes (here in the middle of the second remembered): as the text they hold says.
    const short = Buffer.from("2024-01-01T00:00:")
    Rfc3339.parseBytes(Buffer.from(base), 0, base.length)
    assert.strictEqual(ms(Rfc3339.parseBytes(short, 0, short.length + 4)), ms(Date.parse(short.toString("latin1"))))
    // A range ending early reads no further than its end.
    const line = Buffer.from("2024-01-01T00:00:00.25Z stdout F hello")
    for (const end of [23, 22, 21, 20, 19, 10]) {
      Rfc3339.parseBytes(line, 0, 23)
      assert.strictEqual(ms(Rfc3339.parseBytes(line, 0, end)), ms(Date.parse(line.toString("latin1", 0, end))), `[0, ${end})`)
    }
  })

  it("property: parseBytes agrees with parse on any text, times or not", () => {
    const time = fc.tuple(
      fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true }),
      fc.integer({ min: 0, max: 10 }),
      fc.constantFrom("Z", "z", "+00:00", "+05:45", "-08:00", "+24:00", "")
    ).map(([date, digits, zone]) => `${date.toISOString().slice(0, 19)}${digits === 0 ? "" : `.${"1234567890".slice(0, digits)}`}${zone}`)
    fc.assert(
      fc.property(fc.oneof(time, fc.string({ unit: "grapheme", maxLength: 40 })), fc.oneof(time, fc.string({ maxLength: 30 })), (text, before) => {
        Rfc3339.parse(before)
        const bytes = Buffer.from(text)
        assert.strictEqual(ms(Rfc3339.parseBytes(bytes, 0, bytes.length)), ms(Rfc3339.parse(text)), text)
      }),
      { numRuns: 3000 }
    )
  })
})
