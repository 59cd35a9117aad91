import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as C from "../../src/domain/ContainerLog.ts"

const ID = "0123456789abcdef".repeat(4)

describe("container log file names", () => {
  const cases: ReadonlyArray<readonly [string, C.ContainerFile | undefined]> = [
    [`web-5d8f7c-x2x9q_shop_app-${ID}.log`, { pod: "web-5d8f7c-x2x9q", namespace: "shop", container: "app", containerId: ID }],
    [`orders--worker-6c9d4-q7w8e_prod_orders--worker-${ID}.log`, {
      pod: "orders--worker-6c9d4-q7w8e",
      namespace: "prod",
      container: "orders--worker",
      containerId: ID
    }],
    [`db-0_shop_istio-proxy-${ID}.log`, { pod: "db-0", namespace: "shop", container: "istio-proxy", containerId: ID }],
    [`a.b-c_kube-system_x_y-${ID}.log`, { pod: "a.b-c", namespace: "kube-system", container: "x_y", containerId: ID }],
    [`web_shop_app-${ID.slice(1)}.log`, undefined],
    [`web_shop_app-${ID}.log.1`, undefined],
    [`Web_shop_app-${ID}.log`, undefined],
    ["0.log", undefined]
  ]
  for (const [name, expected] of cases) {
    it(`${name.replace(ID, "<id>")}`, () => assert.deepStrictEqual(C.parseFileName(name), expected))
  }
})

describe("decoding lines", () => {
  it("Docker json-file: text without its newline; a missing newline marks a piece", () => {
    assert.deepStrictEqual(C.decodeLine(`{"log":"hello ✓\\n","stream":"stdout","time":"2024-01-01T00:00:00.123456789Z"}`), {
      stream: "stdout",
      time: Date.UTC(2024, 0, 1, 0, 0, 0, 123),
      text: "hello ✓",
      partial: false
    })
    assert.deepStrictEqual(C.decodeLine(`{"log":"part","stream":"stderr","time":"2024-01-01T00:00:01Z"}`), {
      stream: "stderr",
      time: Date.UTC(2024, 0, 1, 0, 0, 1),
      text: "part",
      partial: true
    })
    assert.strictEqual((C.decodeLine(`{"log":"crlf\\r\\n","stream":"stdout"}`) as C.Piece).text, "crlf")
    assert.isNaN((C.decodeLine(`{"log":"no time\\n","stream":"stdout"}`) as C.Piece).time)
  })

  it("CRI: time, stream, P/F tag, and the rest verbatim (spaces and all)", () => {
    assert.deepStrictEqual(C.decodeLine("2024-01-01T00:00:00.5+01:00 stderr F  two  spaces "), {
      stream: "stderr",
      time: Date.UTC(2023, 11, 31, 23, 0, 0, 500),
      text: " two  spaces ",
      partial: false
    })
    assert.deepStrictEqual(C.decodeLine("2024-01-01T00:00:00Z stdout P {\"json\": 1}"), {
      stream: "stdout",
      time: Date.UTC(2024, 0, 1),
      text: "{\"json\": 1}",
      partial: true
    })
    assert.strictEqual((C.decodeLine("2024-01-01T00:00:00Z stdout F") as C.Piece).text, "")
  })

  it("property: any Docker line decodes as a JSON parse would read it (fast path or not)", () => {
    fc.assert(fc.property(
      fc.string({ unit: "grapheme", maxLength: 40 }),
      fc.boolean(),
      fc.constantFrom("stdout", "stderr"),
      fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }),
      (text, complete, stream, date) => {
        const time = date.toISOString().replace("Z", "456789Z")
        const line = JSON.stringify({ log: complete ? `${text}\n` : text, stream, time })
        assert.deepStrictEqual(C.decodeLine(line), { stream, time: date.getTime(), text, partial: !complete })
      }
    ))
  })

  it("property: times parse as Date.parse reads them, to the millisecond", () => {
    fc.assert(fc.property(
      fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }),
      fc.integer({ min: 0, max: 9 }),
      fc.constantFrom("Z", "+02:00", "-05:30"),
      (date, digits, zone) => {
        const base = date.toISOString().slice(0, 19)
        const fraction = digits === 0 ? "" : `.${"987654321".slice(0, digits)}`
        const text = `${base}${fraction}${zone}`
        assert.strictEqual(C.parseTime(text), Date.parse(text), text)
      }
    ))
    assert.isNaN(C.parseTime("yesterday"))
  })

  it("property: a line's bytes decode as its text does, or are left to decodeLine", () => {
    const part = fc.oneof(
      fc.constantFrom("2024-01-01T00:00:00.123456789Z", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5+01:00", "yesterday", "", "{\"log\":"),
      fc.string({ unit: "grapheme", maxLength: 8 })
    )
    const cri = fc.tuple(part, fc.constantFrom("stdout", "stderr", "stdin", "stdou", ""), fc.constantFrom("F", "P", "P:x", "", " "), fc.string({ unit: "grapheme", maxLength: 20 }), fc.boolean())
      .map(([time, stream, tag, text, withText]) => Buffer.from(`${time} ${stream} ${tag}${withText ? ` ${text}` : ""}`))
    // Anything, invalid UTF-8 included.
    const junk = fc.uint8Array({ maxLength: 60 }).map((bytes) => Buffer.from(bytes.map((b) => (b === 10 ? 32 : b))))
    fc.assert(fc.property(fc.oneof(cri, junk), fc.nat(3), (line, pad) => {
      const data = Buffer.concat([Buffer.alloc(pad, 120), line, Buffer.from("\nmore")])
      const fast = C.decodeCriBytes(data, pad, pad + line.length)
      const text = C.decodeLine(line.toString("utf8"))
      // Left to decodeLine only when not plainly CRI: a Docker line, or a time longer than any runtime writes.
      const leftOver = fast === undefined && !C.isLineError(text)
      assert.isTrue(!leftOver || line[0] === 123 || line.indexOf(32) >= 64, `plain CRI left to decodeLine: ${line.toString("utf8")}`)
      assert.deepStrictEqual(fast ?? text, text, line.toString("utf8"))
    }), { numRuns: 3000 })
  })

  it("CRI bytes: the text decoded as UTF-8 whatever it holds; the header must be plain", () => {
    const bytes = Buffer.concat([Buffer.from("2024-01-01T00:00:00Z stdout F é "), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from(" ✓")])
    assert.deepStrictEqual(C.decodeCriBytes(bytes, 0, bytes.length), C.decodeLine(bytes.toString("utf8")))
    assert.strictEqual(C.decodeCriBytes(Buffer.from("2024-01-01T00:00:00Z stdout"), 0, 27), undefined)
    assert.strictEqual(C.decodeCriBytes(Buffer.from("2024-01-01T00:00:00Z stdout  x"), 0, 30), undefined)
    assert.strictEqual(C.decodeCriBytes(Buffer.from("2024-01-01T00:00:00Z stdin F x"), 0, 30), undefined)
    assert.deepStrictEqual(C.decodeCriBytes(Buffer.from("2024-01-01T00:00:00Z stdout F"), 0, 29), { stream: "stdout", time: Date.UTC(2024, 0, 1), text: "", partial: false })
  })

  it("refuses broken lines with a reason and an excerpt", () => {
    for (const line of ["{\"log\": \"cut", "{\"stream\":\"stdout\"}", "[1,2]"]) {
      const decoded = C.decodeLine(line)
      assert.isTrue(C.isLineError(decoded), line)
    }
    assert.deepStrictEqual(C.decodeLine("garbage"), { reason: "InvalidCri", excerpt: "garbage" })
    assert.deepStrictEqual(C.decodeLine("2024-01-01T00:00:00Z stdin F x"), { reason: "InvalidCri", excerpt: "2024-01-01T00:00:00Z stdin F x" })
  })
})

const piece = (stream: C.StreamName, text: string, partial: boolean): C.Piece => ({ stream, time: 0, text, partial })

describe("joining pieces", () => {
  it("joins per stream, so interleaved stdout and stderr pieces do not mix", () => {
    const lines: Array<C.Line> = []
    const joiner = new C.LineJoiner(1000, (line) => lines.push(line))
    joiner.push(piece("stdout", "a1 ", true), 0, 0)
    joiner.push(piece("stderr", "b1 ", true), 10, 0)
    joiner.push(piece("stdout", "a2", false), 20, 0)
    assert.strictEqual(joiner.pendingOffset, 10)
    joiner.push(piece("stderr", "b2", false), 30, 0)
    joiner.push(piece("stdout", "whole", false), 40, 0)
    assert.deepStrictEqual(lines.map((l) => `${l.stream}:${l.text}`), ["stdout:a1 a2", "stderr:b1 b2", "stdout:whole"])
    assert.isUndefined(joiner.pendingOffset)
  })

  it("cuts lines longer than the limit, on a character boundary, and counts the cuts", () => {
    const lines: Array<string> = []
    const joiner = new C.LineJoiner(10, (line) => lines.push(line.text))
    joiner.push(piece("stdout", "0123456789abcdefghij-tail", false), 0, 0)
    for (let i = 0; i < 5; i++) joiner.push(piece("stdout", "xxxx", true), i, 0)
    joiner.push(piece("stdout", "ééééé", false), 9, 0)
    assert.deepStrictEqual(lines, ["0123456789", "abcdefghij", "-tail", "xxxxxxxxxx", "xxxxxxxxxx", "ééééé"])
    assert.strictEqual(joiner.split, 4)
    assert.deepStrictEqual(C.cutUtf8("aéé", 4), ["aé", "é"])
  })

  it("flushes a line whose last piece never came, after the timeout", () => {
    const lines: Array<string> = []
    const joiner = new C.LineJoiner(100, (line) => lines.push(line.text))
    joiner.push(piece("stdout", "begun", true), 0, 1000)
    joiner.flushOlderThan(999)
    assert.deepStrictEqual(lines, [])
    joiner.flushOlderThan(1000)
    assert.deepStrictEqual(lines, ["begun"])
    assert.strictEqual(joiner.timedOut, 1)
  })

  it("property: joining then cutting keeps every character, in order, and no line exceeds the limit", () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.constantFrom<C.StreamName>("stdout", "stderr"), fc.string({ unit: "grapheme", maxLength: 30 }), fc.boolean()), { maxLength: 40 }),
      fc.integer({ min: 4, max: 50 }),
      (pieces, max) => {
        const lines: Array<C.Line> = []
        const joiner = new C.LineJoiner(max, (line) => lines.push(line))
        pieces.forEach(([stream, text, partial], i) => joiner.push(piece(stream, text, partial), i, 0))
        joiner.flushOlderThan(0)
        for (const stream of ["stdout", "stderr"] as const) {
          const sent = pieces.filter(([s]) => s === stream).map(([, text]) => text).join("")
          assert.strictEqual(lines.filter((l) => l.stream === stream).map((l) => l.text).join(""), sent)
        }
        assert.isTrue(lines.every((l) => Buffer.byteLength(l.text) <= max))
      }
    ))
  })
})
