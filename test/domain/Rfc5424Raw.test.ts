import { assert, describe, it } from "@effect/vitest"
import { Buffer } from "node:buffer"
import * as fc from "fast-check"
import type { LogPacket } from "../../src/domain/LogPacket.ts"
import { FrameDecoder, FrameWriter } from "../../src/domain/syslog/Framing.ts"
import * as Rfc5424Raw from "../../src/domain/syslog/Rfc5424Raw.ts"
import * as Syslog from "../../src/domain/syslog/Syslog.ts"

const now = new Date("2024-03-01T12:00:00.000Z")

/** A packet's fields, read through its getters (a raw packet's are on its prototype). */
const fieldsOf = (p: LogPacket) => ({
  time: p.time.getTime(),
  hostname: p.hostname,
  tag: p.tag,
  message: p.message,
  severity: p.severity,
  facility: p.facility,
  procId: p.procId,
  msgId: p.msgId,
  structuredData: p.structuredData,
  rfc5424: p.rfc5424
})

/** What each way of reading gives for `bytes`: decoded then parsed, and parsed from the bytes. */
const both = (bytes: Buffer) => {
  const decoded = Syslog.parse(bytes.toString("utf8"), now, "peer")
  const raw = Syslog.parseRaw(bytes.toString("latin1"), now, "peer")
  return { decoded, raw }
}

const assertSame = (bytes: Buffer) => {
  const { decoded, raw } = both(bytes)
  if (Syslog.isParseError(decoded)) {
    assert.isTrue(Syslog.isParseError(raw), `only the decoded line failed: ${bytes.toString("utf8")}`)
    if (Syslog.isParseError(raw)) {
      assert.strictEqual(raw.reason, decoded.reason)
      assert.strictEqual(raw.excerpt, decoded.excerpt)
    }
    return
  }
  assert.isFalse(Syslog.isParseError(raw), `only the bytes failed: ${bytes.toString("utf8")}`)
  const packet = raw as LogPacket
  assert.deepStrictEqual(fieldsOf(packet), fieldsOf(decoded))
  // Forwarded as received: the bytes, without the trailing CR/LF/NUL the parsers ignore.
  if (packet.raw !== undefined) {
    assert.strictEqual(packet.rfc5424, decoded.rfc5424)
    assert.isTrue(Buffer.from(packet.raw, "latin1").equals(Buffer.from(decoded.rfc5424!, "utf8")) || !isValidUtf8(bytes))
  }
}

const isValidUtf8 = (bytes: Buffer) => Buffer.from(bytes.toString("utf8"), "utf8").equals(bytes)

describe("Rfc5424Raw.parse", () => {
  it("reads a line's fields as Rfc5424.parse reads the decoded line", () => {
    for (
      const line of [
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% do-nuts",
        "<134>1 2026-01-01T00:00:00.000000Z localhost app 1234 - - \ufeffmessage with a BOM\n",
        "<134>1 2026-01-01T00:00:00Z hôte.example äpp 12 ID47 [ex@1 a=\"é\\\"]\"][b c=\"d\"] mëssage ✓\r\n",
        "<0>1 2026-01-01T00:00:00Z - - - - -",
        "<0>1 2026-01-01T00:00:00Z - - - - - ",
        "<13>1 - host app - - - no time: repaired",
        "<13>1 2026-13-45T99:00:00Z host app - - - unreadable time",
        "<13>1 2026-01-01T00:00:00Z host app - - [broken message: repaired",
        "<13>1 2026-01-01T00:00:00Z host app web.1 - logplex leaves STRUCTURED-DATA out",
        "<13>1 2026-01-01T00:00:00Z host app",
        "<13>2 2026-01-01T00:00:00Z host app - - - version 2",
        "<999>1 bad priority",
        "no priority at all",
        "<13>Jan  1 00:00:00 host tag[1]: RFC 3164, ünïcödé",
        "\r\n"
      ]
    ) assertSame(Buffer.from(line, "utf8"))
  })

  it("reads invalid UTF-8 as decoding the whole line would", () => {
    const head = Buffer.from("<134>1 2026-01-01T00:00:00Z h")
    for (
      const bad of [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98]]
    ) {
      const tail = Buffer.from(" app 1 - - message ", "utf8")
      assertSame(Buffer.concat([head, Buffer.from(bad), tail, Buffer.from(bad)]))
      assertSame(Buffer.concat([Buffer.from("<134>1 2026-01-01T00:00:00Z host app 1 - [a b=\""), Buffer.from(bad), Buffer.from("\"] m")]))
    }
  })

  it("gives the same fields for lines that differ in one field after another (what it keeps of the last line)", () => {
    const lines = [
      "<134>1 2026-01-01T00:00:00.001Z web app 1 - - a",
      "<134>1 2026-01-01T00:00:00.001Z web app 1 - - b",
      "<134>1 2026-01-01T00:00:00.002Z web app 1 - - c",
      "<134>1 2026-01-01T00:00:00.002+01:00 web app 1 - - d",
      "<134>1 2026-01-01T00:00:00.002Z - app 1 - - nil hostname",
      "<134>1 2026-01-01T00:00:00.002Z - app 1 - - nil hostname again",
      "<134>1 2026-01-01T00:00:00.002Z wéb app 1 - - not ASCII",
      "<134>1 2026-01-01T00:00:00.002Z wéb app 1 - - not ASCII again",
      "<134>1 2026-01-01T00:00:00.002Z w\u00e9b app 1 - - é as one byte",
      "<134>1 2026-01-01T00:00:00.002Z webs app 1 - - longer",
      "<134>1 2026-01-01T00:00:00.002Z web app 1 - - back"
    ]
    for (let round = 0; round < 3; round++) for (const line of lines) assertSame(Buffer.from(line, "utf8"))
    // A run of lines whose times all differ, then a run sharing one, then hostnames changing alone.
    for (let i = 0; i < 600; i++) {
      const ms = i < 300 ? String(i % 1000).padStart(3, "0") : "999"
      const host = i < 500 ? "web" : `web-${i % 3}`
      assertSame(Buffer.from(`<134>1 2026-01-01T00:00:00.${ms}Z ${host} app 1 - - line ${i}`, "utf8"))
    }
    // Once a head is kept (a run of lines sharing it), lines that start with it and go on otherwise.
    for (const after of ["s app 1 - - one letter more", "", " ", "  1 - - empty app", " app", " app 1 - [broken", "app 1 - - one field fewer"]) {
      for (let i = 0; i < 300; i++) assertSame(Buffer.from(`<134>1 2026-01-01T00:00:00.002Z web app 1 - - line ${i}`, "utf8"))
      assertSame(Buffer.from(`<134>1 2026-01-01T00:00:00.002Z web${after}`, "utf8"))
    }
    // é as its one latin1 byte (E9): invalid UTF-8, never the hostname "wéb" kept from before.
    assertSame(Buffer.from("<134>1 2026-01-01T00:00:00.002Z w\u00e9b app 1 - - latin1", "latin1"))
  })

  it("agrees with Rfc5424.parse on generated lines, valid UTF-8 or not", () => {
    const piece = fc.oneof(
      fc.constantFrom("-", "host", "app", "1234", "ID47", "é", "✓", "\ufeff", " ", "[", "]", "\"", "\\", "=", "x@1", "\n", "\r", "\0"),
      fc.string({ maxLength: 6 }),
      fc.string({ unit: "grapheme", maxLength: 4 })
    ).map((s) => Buffer.from(s, "utf8"))
    const field = fc.oneof(fc.array(piece, { minLength: 1, maxLength: 3 }).map((p) => Buffer.concat(p)), fc.uint8Array({ minLength: 1, maxLength: 4 }).map((b) => Buffer.from(b)))
    const time = fc.constantFrom("-", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456+02:00", "2026-01-01T00:00:00.5z", "2026-02-30T00:00:00Z", "1985-04-12T23:20:50.52Z", "2026-01-01T00:00:00")
    const sd = fc.constantFrom("-", "[a b=\"c\"]", "[a b=\"é\\]\"][x@1]", "[broken", "[a b=\"\\\"\"]")
    const line = fc.tuple(fc.constantFrom("<134>1 ", "<0>1 ", "<191>1 ", "<01>1 ", "<192>1 ", "<1234>1 ", "<>1 ", "<1 ", "<a>1 ", "134>1 ", "<13>2 ", "<13>1", "<009>1 "), time, field, field, field, field, sd, fc.array(piece, { maxLength: 4 }))
      .map(([pri, t, h, a, p, m, s, msg]) =>
        Buffer.concat([Buffer.from(`${pri}${t} `), h, Buffer.from(" "), a, Buffer.from(" "), p, Buffer.from(" "), m, Buffer.from(` ${s} `), ...msg])
      )
    assert.doesNotThrow(() => fc.assert(fc.property(line, assertSame), { numRuns: 3000 }))
  })
})

describe("reading frames as bytes and writing them out again", () => {
  it("a syslog drain writes what the input read, byte for byte, in either framing", () => {
    const messages = [
      "<134>1 2026-01-01T00:00:00.000000Z localhost app 1234 - - \ufeffBOM and ünïcödé ✓",
      "<134>1 2026-01-01T00:00:00Z host app - - [a b=\"é\"] two\nlines"
    ]
    const sent = Buffer.concat(messages.map((m) => Buffer.from(`${Buffer.byteLength(m)} ${m}`)))
    const frames = new FrameDecoder({ maxFrameBytes: 1024, bytes: true }).decode(sent)
    const packets = frames.map((frame) => Syslog.parseRaw(frame, now) as LogPacket)
    assert.isTrue(packets.every((p) => p.raw !== undefined))

    const octets = new FrameWriter("octet-counting")
    for (const p of packets) octets.addBytes(p.raw!)
    assert.isTrue(octets.take().equals(sent))

    const lines = new FrameWriter("newline")
    for (const p of packets) lines.addBytes(p.raw!)
    assert.strictEqual(lines.take().toString("utf8"), messages.map((m) => `${m.replace("\n", " ")}\n`).join(""))
    assert.strictEqual(packets[0]!.message, "BOM and ünïcödé ✓")
    assert.strictEqual(Rfc5424Raw.decode(packets[1]!.raw!), messages[1])
  })

  it("frames as bytes are the decoded frames' bytes, without the CR, LF and NUL at their end", () => {
    const messages = ["<13>1 - h a - - - ✓\n", "\n", "a\r\n\0", "plain", "é\r"]
    const octets = Buffer.concat(messages.map((m) => Buffer.from(`${Buffer.byteLength(m)} ${m}`)))
    const lines = Buffer.from("line one\r\nline\0 two\r\r\nthree é\n")
    for (const stream of [octets, lines]) {
      const decoded = new FrameDecoder({ maxFrameBytes: 1024 }).decode(stream)
      const bytes = new FrameDecoder({ maxFrameBytes: 1024, bytes: true }).decode(stream)
      assert.deepStrictEqual(bytes.map((b) => Rfc5424Raw.decode(b)), decoded.map((d) => d.replace(/[\r\n\0]+$/, "")))
    }
  })
})
