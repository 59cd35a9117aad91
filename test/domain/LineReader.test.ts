import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as ContainerLog from "../../src/domain/ContainerLog.ts"
import { LineReader, type PositionedLine } from "../../src/domain/LineReader.ts"

const T = "2026-01-01T00:00:00.000000000Z"
const cri = (text: string, stream = "stdout", tag = "F") => `${T} ${stream} ${tag} ${text}\n`

/** Reads `bytes` in chunks of the given sizes (cycled); returns the lines and the reader. */
const read = (bytes: Buffer, chunks: ReadonlyArray<number>, maxLineBytes: number, from = 0) => {
  const lines: Array<PositionedLine> = []
  const malformed: Array<string> = []
  const reader = new LineReader(from, { maxLineBytes }, { line: (stream, time, text, position) => lines.push({ stream, time, text, position }), malformed: (m) => malformed.push(m) })
  let at = from
  let i = 0
  while (at < bytes.length) {
    const n = Math.max(1, chunks[i++ % chunks.length]!)
    reader.feed(bytes.subarray(at, Math.min(bytes.length, at + n)), 0)
    at = Math.min(bytes.length, at + n)
  }
  return { lines, malformed, reader }
}

describe("LineReader", () => {
  it("joins pieces per stream; a line's position is the byte after its last piece", () => {
    const text = cri("a1", "stdout", "P") + cri("b", "stderr") + cri("a2") + cri("c")
    const { lines } = read(Buffer.from(text), [7], 1000)
    assert.deepStrictEqual(lines.map((l) => [l.stream, l.text]), [["stderr", "b"], ["stdout", "a1a2"], ["stdout", "c"]])
    const ends = [2, 3, 4].map((n) => Buffer.byteLength(text.split("\n").slice(0, n).join("\n")) + 1)
    assert.deepStrictEqual(lines.map((l) => l.position), ends)
  })

  it("a CRI line of 1 MB without a newline in sight is sent in pieces as it is read, never held whole", () => {
    const big = "x".repeat(1024 * 1024)
    const bytes = Buffer.from(cri("before") + cri(big) + cri("after"))
    const { lines, reader } = read(bytes, [65536], 64 * 1024)
    assert.strictEqual(lines[0]!.text, "before")
    assert.strictEqual(lines.at(-1)!.text, "after")
    const pieces = lines.slice(1, -1)
    assert.strictEqual(pieces.map((l) => l.text).join(""), big, "the pieces are the line, in order, nothing lost")
    assert.isTrue(pieces.every((l) => l.text.length <= 64 * 1024), "each piece fits")
    assert.strictEqual(pieces.length, 16)
    assert.strictEqual(reader.split, 15)
    for (let i = 1; i < lines.length; i++) assert.isTrue(lines[i]!.position > lines[i - 1]!.position)
  })

  it("a Docker line longer than any runtime writes is dropped up to its newline, counted", () => {
    const junk = `{"log":"${"y".repeat(400_000)}`
    const bytes = Buffer.from(`${junk}\n{"log":"ok\\n","stream":"stdout","time":"${T}"}\n`)
    const { lines, malformed } = read(bytes, [65536], 64 * 1024)
    assert.deepStrictEqual(lines.map((l) => l.text), ["ok"])
    assert.strictEqual(malformed.length, 1)
  })

  // A file of CRI lines, some split (P), some long, on two streams.
  const file = fc.array(
    fc.record({
      text: fc.oneof(fc.string({ unit: "grapheme", maxLength: 12 }), fc.constant("z".repeat(70)), fc.constant("é".repeat(40)), fc.constant("w".repeat(300)), fc.constant("ü".repeat(150))),
      stream: fc.constantFrom("stdout", "stderr"),
      partial: fc.boolean()
    }),
    { maxLength: 40 }
  ).map((lines) => Buffer.from(lines.map((l) => cri(l.text.replace(/\n/g, " "), l.stream, l.partial ? "P" : "F")).join("")))

  it("property: the same lines at the same positions whatever the chunks read", () => {
    fc.assert(fc.property(file, fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 5 }), (bytes, chunks) => {
      const whole = read(bytes, [bytes.length + 1], 64)
      const chunked = read(bytes, chunks, 64)
      assert.deepStrictEqual(chunked.lines, whole.lines)
    }), { numRuns: 300 })
  })

  it("property: from the resume point of any moment, skipping what came out before, the rest comes out exactly", () => {
    fc.assert(fc.property(file, fc.integer({ min: 1, max: 90 }), fc.nat(), (bytes, chunk, cutAt) => {
      const all = read(bytes, [chunk], 64).lines
      // Read up to a chunk boundary, note the resume point and what came out.
      const first: Array<PositionedLine> = []
      const reader = new LineReader(0, { maxLineBytes: 64 }, { line: (stream, time, text, position) => first.push({ stream, time, text, position }), malformed: () => {} })
      const stop = Math.min(bytes.length, (cutAt % (Math.ceil(bytes.length / chunk) + 1)) * chunk)
      for (let at = 0; at < stop; at += chunk) reader.feed(bytes.subarray(at, Math.min(stop, at + chunk)), 0)
      const resume = reader.resumeOffset
      const last = first.at(-1)?.position ?? -1
      const again = read(bytes, [chunk], 64, resume).lines.filter((l) => l.position > last)
      assert.deepStrictEqual([...first, ...again], all)
    }), { numRuns: 300 })
  })

  it("property: lines read from their bytes come out as decoding each line as text and joining gives", () => {
    const line = fc.oneof(
      fc.tuple(fc.constantFrom(T, "2026-01-01T00:00:00.5+01:00", "bad", "2026-01-01T00:00:01.25Z", "2026-01-01T00:00:00 000000000Z", "2026-01-01T00:00:00.000000000Z1"), fc.constantFrom("stdout", "stderr", "stdin"), fc.constantFrom("F", "P", "P:x", ""), fc.string({ unit: "grapheme", maxLength: 30 }))
        .map(([time, stream, tag, text]) => Buffer.from(`${time} ${stream} ${tag} ${text.replace(/\n/g, " ")}`)),
      fc.string({ maxLength: 20 }).map((text) => Buffer.from(`{"log":${JSON.stringify(`${text}\n`)},"stream":"stderr","time":"${T}"}`)),
      fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes.map((b) => (b === 10 ? 32 : b))))
    )
    fc.assert(fc.property(fc.array(line, { maxLength: 30 }), fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 5 }), (lines, chunks) => {
      const bytes = Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\n")]))
      const expected: Array<PositionedLine> = []
      let end = 0
      let malformed = 0
      const joiner = new ContainerLog.LineJoiner(1000, (l) => expected.push({ stream: l.stream, time: l.time, text: l.text, position: end }))
      let offset = 0
      for (const l of lines) {
        const piece = ContainerLog.decodeLine(l.toString("utf8"))
        if (l.length > 0) {
          if (ContainerLog.isLineError(piece)) malformed++
          else {
            end = offset + l.length + 1
            joiner.push(piece, offset, 0)
          }
        }
        offset += l.length + 1
      }
      const got = read(bytes, chunks, 1000)
      assert.deepStrictEqual(got.lines, expected)
      assert.strictEqual(got.malformed.length, malformed)
    }), { numRuns: 500 })
  })
})
