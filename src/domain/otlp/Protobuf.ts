/**
 * The protobuf wire format, as much of it as OTLP logs need: a writer that encodes in one pass
 * into one growing buffer, and a reader that never reads past its input.
 *
 * The writer is ours rather than Effect's (effect/observability's encoder, reached through
 * `OtlpSerialization.layerProtobuf`) for speed: Effect's builds a Uint8Array per field and
 * concatenates at every level, with BigInt varints — 21–23k log records per second on this
 * machine, against the ~470k lines/s logtrain relays. Ours writes the same bytes (a test checks it
 * against Effect's on random data) at several hundred thousand records per second.
 *
 * Nested messages: the writer reserves five bytes for the length, writes the message, then writes
 * the length in as few bytes as it needs and moves the message back over the rest (canonical
 * varints, as every encoder writes them).
 */
import { Buffer, isUtf8 } from "node:buffer"

export const WireType = { Varint: 0, Fixed64: 1, LengthDelimited: 2, Fixed32: 5 } as const

const MAX_LENGTH_BYTES = 5

/** Bytes a non-negative integer (below 2^53) takes as a varint. */
export const varintSize = (n: number): number => {
  let size = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    size++
  }
  return size
}

export class Writer {
  private buf: Buffer
  pos = 0

  constructor(initialSize = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialSize)
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  /** A varint of a non-negative integer below 2^53. */
  varint(n: number): void {
    this.ensure(10)
    while (n >= 128) {
      this.buf[this.pos++] = (n % 128) | 128
      n = Math.floor(n / 128)
    }
    this.buf[this.pos++] = n
  }

  /** A varint of any 64-bit value (negative ones as their two's complement, ten bytes). */
  varint64(n: bigint): void {
    let v = BigInt.asUintN(64, n)
    this.ensure(10)
    while (v >= 128n) {
      this.buf[this.pos++] = Number(v & 127n) | 128
      v >>= 7n
    }
    this.buf[this.pos++] = Number(v)
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType)
  }

  /** Little-endian 64 bits from two 32-bit halves. */
  fixed64(low: number, high: number): void {
    this.ensure(8)
    this.buf.writeUInt32LE(low >>> 0, this.pos)
    this.buf.writeUInt32LE(high >>> 0, this.pos + 4)
    this.pos += 8
  }

  fixed64Big(n: bigint): void {
    this.ensure(8)
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, n), this.pos)
    this.pos += 8
  }

  fixed32(n: number): void {
    this.ensure(4)
    this.buf.writeUInt32LE(n >>> 0, this.pos)
    this.pos += 4
  }

  double(n: number): void {
    this.ensure(8)
    this.buf.writeDoubleLE(n, this.pos)
    this.pos += 8
  }

  /** A string field: tag, UTF-8 length, bytes. */
  string(field: number, s: string): void {
    const length = Buffer.byteLength(s, "utf8")
    this.tag(field, WireType.LengthDelimited)
    this.varint(length)
    this.ensure(length)
    this.pos += this.buf.write(s, this.pos, length, "utf8")
  }

  /** A string field whose UTF-8 length the caller has measured. */
  stringOfLength(field: number, s: string, length: number): void {
    this.tag(field, WireType.LengthDelimited)
    this.varint(length)
    this.ensure(length)
    this.pos += this.buf.write(s, this.pos, length, "utf8")
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, WireType.LengthDelimited)
    this.varint(b.length)
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  /** Starts a nested message in `field`; `end` with what it returns closes it. */
  begin(field: number): number {
    this.tag(field, WireType.LengthDelimited)
    this.ensure(MAX_LENGTH_BYTES)
    this.pos += MAX_LENGTH_BYTES
    return this.pos
  }

  end(start: number): void {
    const length = this.pos - start
    const size = varintSize(length)
    let at = start - MAX_LENGTH_BYTES
    let n = length
    while (n >= 128) {
      this.buf[at++] = (n % 128) | 128
      n = Math.floor(n / 128)
    }
    this.buf[at++] = n
    if (size < MAX_LENGTH_BYTES) {
      this.buf.copyWithin(at, start, this.pos)
      this.pos -= MAX_LENGTH_BYTES - size
    }
  }

  /** What was written, as a copy the writer no longer touches. */
  finish(): Uint8Array {
    return Uint8Array.prototype.slice.call(this.buf, 0, this.pos)
  }

  /** What was written, without a copy: for a writer that is done with. */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

/** What the reader throws for input that is not valid protobuf. */
export class ProtobufError extends Error {
  override readonly name = "ProtobufError"
}

/** A reader over one message (or a slice of one); every read checks its bounds. */
export class Reader {
  readonly buf: Uint8Array
  pos: number
  readonly end: number

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf
    this.pos = start
    this.end = end
  }

  get done(): boolean {
    return this.pos >= this.end
  }

  /** A varint of at most 53 significant bits (lengths, tags, enums, small integers). */
  varint(): number {
    let result = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtobufError("truncated varint")
      const byte = this.buf[this.pos++]!
      result += (byte & 127) * scale
      if (byte < 128) return result
      scale *= 128
    }
    throw new ProtobufError("varint longer than 10 bytes")
  }

  varint64(): bigint {
    let result = 0n
    let shift = 0n
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtobufError("truncated varint")
      const byte = this.buf[this.pos++]!
      result |= BigInt(byte & 127) << shift
      if (byte < 128) return BigInt.asUintN(64, result)
      shift += 7n
    }
    throw new ProtobufError("varint longer than 10 bytes")
  }

  /** The next field's number and wire type; field 0 is invalid protobuf. */
  tag(): { readonly field: number; readonly wireType: number } {
    const tag = this.varint()
    const field = Math.floor(tag / 8)
    if (field === 0) throw new ProtobufError("field number 0")
    return { field, wireType: tag % 8 }
  }

  /** A fixed64 as milliseconds-and-nanoseconds-friendly halves. */
  fixed64(): { readonly low: number; readonly high: number } {
    this.need(8)
    const low = readUInt32LE(this.buf, this.pos)
    const high = readUInt32LE(this.buf, this.pos + 4)
    this.pos += 8
    return { low, high }
  }

  fixed32(): number {
    this.need(4)
    const n = readUInt32LE(this.buf, this.pos)
    this.pos += 4
    return n
  }

  double(): number {
    this.need(8)
    const n = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true)
    this.pos += 8
    return n
  }

  /** The bounds of a length-delimited field's content, skipped over. */
  lengthDelimited(): { readonly start: number; readonly end: number } {
    const length = this.varint()
    this.need(length)
    const start = this.pos
    this.pos += length
    return { start, end: this.pos }
  }

  /** A string field; protobuf strings are UTF-8, and one that is not is an error (as Go's decoder says). */
  string(): string {
    const { end, start } = this.lengthDelimited()
    const bytes = Buffer.from(this.buf.buffer, this.buf.byteOffset + start, end - start)
    if (!isUtf8(bytes)) throw new ProtobufError("a string field is not valid UTF-8")
    return bytes.toString("utf8")
  }

  bytes(): Uint8Array {
    const { end, start } = this.lengthDelimited()
    return this.buf.slice(start, end)
  }

  /** A reader over a nested message. */
  message(): Reader {
    const { end, start } = this.lengthDelimited()
    return new Reader(this.buf, start, end)
  }

  /** Skips a field of an unknown number, as protobuf requires. */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.Varint:
        this.varint64()
        return
      case WireType.Fixed64:
        this.need(8)
        this.pos += 8
        return
      case WireType.LengthDelimited:
        this.lengthDelimited()
        return
      case WireType.Fixed32:
        this.need(4)
        this.pos += 4
        return
      default:
        throw new ProtobufError(`unsupported wire type ${wireType}`)
    }
  }

  /** Checks that a known field has the wire type its schema says. */
  expect(wireType: number, expected: number, field: string): void {
    if (wireType !== expected) throw new ProtobufError(`${field} has wire type ${wireType}, expected ${expected}`)
  }

  private need(n: number): void {
    if (n > this.end - this.pos) throw new ProtobufError("truncated message")
  }
}

const readUInt32LE = (buf: Uint8Array, at: number): number =>
  (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16)) + buf[at + 3]! * 0x1000000
