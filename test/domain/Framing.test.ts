import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { Buffer } from "node:buffer"
import { frame, frameAll, FrameDecoder, FrameWriter, newlineTerminated, octetCounted } from "../../src/domain/syslog/Framing.ts"

const bytes = (s: string) => Buffer.from(s, "utf8")

describe("FrameDecoder", () => {
  it("reads octet-counted and newline frames mixed on one stream", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 })
    const frames = decoder.decode(bytes("11 <13>1 - a b\n<13>plain line\r\n2024-01-01 starts with digits\n5 héé"))
    assert.deepStrictEqual(frames, ["<13>1 - a b", "<13>plain line", "2024-01-01 starts with digits", "héé"])
  })

  it("counts bytes, not characters, in MSG-LEN", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 })
    assert.deepStrictEqual(decoder.decode(bytes(octetCounted("日本") + octetCounted("x"))), ["日本", "x"])
  })

  it("keeps a frame that straddles chunks until it is complete", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 })
    assert.deepStrictEqual(decoder.decode(bytes("1")), [])
    assert.deepStrictEqual(decoder.decode(bytes("2 hello")), [])
    assert.deepStrictEqual(decoder.decode(bytes(" world!partial")), ["hello world!"])
    assert.deepStrictEqual(decoder.decode(bytes(" line\n")), ["partial line"])
    assert.strictEqual(decoder.pendingBytes, 0)
  })

  it("ends with the last unterminated line", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 })
    assert.deepStrictEqual(decoder.decode(bytes("a\nb")), ["a"])
    assert.deepStrictEqual(decoder.end(), ["b"])
  })

  it("truncates an oversize octet-counted frame, counts it and skips the rest", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 16 })
    const big = "x".repeat(100)
    const frames = [
      ...decoder.decode(bytes(`100 ${big.slice(0, 50)}`)),
      ...decoder.decode(bytes(`${big.slice(50)}3 abc`))
    ]
    assert.deepStrictEqual(frames, ["x".repeat(16), "abc"])
    assert.strictEqual(decoder.truncated, 1)
  })

  it("truncates an oversize line without holding more than the limit", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 16 })
    const frames = decoder.decode(bytes("y".repeat(40)))
    assert.deepStrictEqual(frames, ["y".repeat(16)])
    assert.strictEqual(decoder.pendingBytes, 0)
    assert.deepStrictEqual(decoder.decode(bytes(`${"y".repeat(40)}\nnext\n`)), ["next"])
    assert.strictEqual(decoder.truncated, 1)
  })

  it("never cuts a UTF-8 character in half when truncating", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 16 })
    const [frame] = decoder.decode(bytes(`${"é".repeat(20)}\n`))
    assert.strictEqual(frame, "é".repeat(8))
    assert.isFalse(frame!.includes("\ufffd"))
  })

  it("treats a digit run that is too long to be MSG-LEN as the start of a line", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 })
    assert.deepStrictEqual(decoder.decode(bytes("123456789012 text\n")), ["123456789012 text"])
  })
})

const splitAt = (buf: Buffer, cuts: ReadonlyArray<number>): Array<Buffer> => {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].toSorted((a, b) => a - b)
  const parts: Array<Buffer> = []
  let last = 0
  for (const p of points) {
    parts.push(buf.subarray(last, p))
    last = p
  }
  parts.push(buf.subarray(last))
  return parts
}

describe("framing properties", () => {
  const message = fc.string({ unit: "grapheme", minLength: 1, maxLength: 120 })
    .filter((m) => !/^[\r\n\0]/.test(m) && !/[\r\n\0]$/.test(m))

  it("octet-counted messages come back whole however the stream is cut", () => {
    fc.assert(fc.property(fc.array(message, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (messages, cuts) => {
      const stream = Buffer.from(messages.map(octetCounted).join(""), "utf8")
      const decoder = new FrameDecoder({ maxFrameBytes: 4096 })
      const out = splitAt(stream, cuts).flatMap((part) => decoder.decode(part))
      assert.deepStrictEqual([...out, ...decoder.end()], messages)
    }), { numRuns: 300 })
  })

  it("newline-terminated messages without line breaks come back whole however the stream is cut", () => {
    const line = message.filter((m) => !/[\r\n\0]/.test(m) && !/^[1-9][0-9]{0,9} /.test(m))
    fc.assert(fc.property(fc.array(line, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (messages, cuts) => {
      const stream = Buffer.from(messages.map(newlineTerminated).join(""), "utf8")
      const decoder = new FrameDecoder({ maxFrameBytes: 4096 })
      const out = splitAt(stream, cuts).flatMap((part) => decoder.decode(part))
      assert.deepStrictEqual([...out, ...decoder.end()], messages)
    }), { numRuns: 300 })
  })

  it("never throws and never holds more than the limit, on any bytes", () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), (chunks) => {
      const decoder = new FrameDecoder({ maxFrameBytes: 64 })
      for (const chunk of chunks) {
        for (const frame of decoder.decode(chunk)) assert.isAtMost(Buffer.byteLength(frame), 64 * 3)
        assert.isAtMost(decoder.pendingBytes, 64 + 11)
      }
      decoder.end()
    }), { numRuns: 1000 })
  })

  it("decodes any stream the same however it is cut: the same frames, truncations and last line", () => {
    // Pieces that make every case likely: MSG-LEN or not, blanks, CR LF, multi-byte characters
    // that truncation must not split, frames longer than the limit.
    const piece = fc.constantFrom("1", "2", "9", "0", " ", "\n", "\r", "\0", "x", "<14>", "é", "日", "🎉", "12 ", "3 ab", "20 ")
    fc.assert(fc.property(fc.array(piece, { maxLength: 120 }), fc.array(fc.nat(), { maxLength: 40 }), fc.integer({ min: 16, max: 40 }), (parts, cuts, max) => {
      const stream = Buffer.from(parts.join(""), "utf8")
      const whole = new FrameDecoder({ maxFrameBytes: max })
      const expected = [...whole.decode(stream), ...whole.end()]
      const pieces = new FrameDecoder({ maxFrameBytes: max })
      const out = [...splitAt(stream, cuts).flatMap((part) => pieces.decode(part)), ...pieces.end()]
      assert.deepStrictEqual(out, expected)
      assert.strictEqual(pieces.truncated, whole.truncated)
    }), { numRuns: 3000 })
  })

  it("a frame trickling in byte by byte comes back whole, and nothing is held after it", () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 65536 })
    const line = `<14>1 - host app - - - ${"é".repeat(20_000)}`
    const stream = Buffer.from(`${octetCounted(line)}${line}\n`, "utf8")
    const frames: Array<string> = []
    for (let i = 0; i < stream.length; i++) frames.push(...decoder.decode(stream.subarray(i, i + 1)))
    assert.deepStrictEqual(frames, [line, line])
    assert.strictEqual(decoder.pendingBytes, 0)
  })

  it("newline framing turns line breaks inside a message into spaces", () => {
    assert.strictEqual(newlineTerminated("a\nb\r\nc\0d"), "a b  c d\n")
  })
})

describe("frameAll", () => {
  it("property: the bytes of the framed messages joined, whatever the text (and however large the batch)", () => {
    fc.assert(fc.property(
      fc.array(fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), fc.string({ unit: "grapheme", maxLength: 50 })), { maxLength: 40 }),
      fc.constantFrom("newline" as const, "octet-counting" as const),
      (messages, framing) => {
        const expected = Buffer.from(messages.map((m) => frame(framing, m)).join(""), "utf8")
        assert.isTrue(frameAll(messages, framing).equals(expected))
      }
    ))
    // A message given as head and body: the bytes of `head SP body` (or of `head` alone).
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.string({ unit: "binary", maxLength: 100 }), fc.string({ unit: "binary", maxLength: 200 })), { maxLength: 20 }),
      fc.constantFrom("newline" as const, "octet-counting" as const),
      (parts, framing) => {
        const writer = new FrameWriter(framing)
        for (const [head, body] of parts) writer.add(head, body)
        const expected = parts.map(([head, body]) => frame(framing, body === "" ? head : `${head} ${body}`)).join("")
        assert.isTrue(writer.take().equals(Buffer.from(expected, "utf8")))
      }
    ))
    // Heads repeated, as a source's packets share theirs (a repeated head is copied from where it
    // was written): from a few, in runs, with line breaks and non-ASCII in some; ASCII bodies too.
    fc.assert(fc.property(
      fc.array(fc.string({ unit: "binary", maxLength: 60 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.tuple(fc.nat(), fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), fc.string({ maxLength: 200 }))), { maxLength: 40 }),
      fc.constantFrom("newline" as const, "octet-counting" as const),
      (heads, parts, framing) => {
        const writer = new FrameWriter(framing)
        // Equal heads as distinct strings too (the cache compares contents).
        const messages = parts.map(([k, body]) => [k % 3 === 0 ? heads[k % heads.length]!.split("").join("") : heads[k % heads.length]!, body] as const)
        for (const [head, body] of messages) writer.add(head, body)
        const expected = messages.map(([head, body]) => frame(framing, body === "" ? head : `${head} ${body}`)).join("")
        assert.isTrue(writer.take().equals(Buffer.from(expected, "utf8")))
      }
    ))
    // Messages as bytes (byte strings, one character per byte: CR, LF and NUL among them) between
    // messages as text: each framed as it would be alone.
    const byteString = fc.array(fc.oneof(fc.constantFrom(0, 10, 13, 32, 0xc3, 0xa9), fc.integer({ min: 0, max: 255 })), { maxLength: 200 })
      .map((codes) => String.fromCharCode(...codes))
    fc.assert(fc.property(
      fc.array(fc.oneof(byteString.map((bytes) => ({ bytes })), fc.string({ unit: "binary", maxLength: 100 }).map((text) => ({ text }))), { maxLength: 40 }),
      fc.constantFrom("newline" as const, "octet-counting" as const),
      (messages, framing) => {
        const writer = new FrameWriter(framing)
        for (const m of messages) {
          if ("bytes" in m) writer.addBytes(m.bytes)
          else writer.add(m.text)
        }
        const expected = messages.map((m) =>
          "text" in m
            ? Buffer.from(frame(framing, m.text), "utf8")
            : framing === "newline"
            ? Buffer.from(`${m.bytes.replace(/[\r\n\0]/g, " ")}\n`, "latin1")
            : Buffer.from(`${m.bytes.length} ${m.bytes}`, "latin1")
        )
        assert.isTrue(writer.take().equals(Buffer.concat(expected)))
      }
    ))
    // One head for a whole batch past the scratch buffer's first size (and past the first size of
    // where newline framing keeps its LFs' places).
    for (const framing of ["newline", "octet-counting"] as const) {
      const writer = new FrameWriter(framing)
      const head = "<14>1 2026-01-01T00:00:00.123Z app-1 app - - -"
      for (let i = 0; i < 5000; i++) writer.add(head, `line ${i} ${"y".repeat(100)}`)
      const expected = Array.from({ length: 5000 }, (_, i) => frame(framing, `${head} line ${i} ${"y".repeat(100)}`)).join("")
      assert.isTrue(writer.take().equals(Buffer.from(expected, "utf8")))
    }
    // Past the scratch buffer's first size, several times over.
    const big = Array.from({ length: 3000 }, (_, i) => `${"é✓".repeat(100)} ${i}`)
    for (const framing of ["newline", "octet-counting"] as const) {
      assert.isTrue(frameAll(big, framing).equals(Buffer.from(big.map((m) => frame(framing, m)).join(""), "utf8")))
    }
  })
})
