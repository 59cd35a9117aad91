import { assert, describe, it } from "@effect/vitest"
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { extendedBy, FINGERPRINT_BYTES, fingerprintOf, naturalOrder } from "../../../src/layers/inputs/containers/files.ts"

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

/** Runs `f` on an open file holding `content`. */
const withFile = <A>(content: string, f: (fd: number) => A): A => {
  const dir = mkdtempSync(join(tmpdir(), "logtrain-files-"))
  const path = join(dir, "0.log")
  writeFileSync(path, content)
  const fd = openSync(path, "r")
  try {
    return f(fd)
  } finally {
    closeSync(fd)
    rmSync(dir, { recursive: true })
  }
}

describe("a fingerprint grown with what was read", () => {
  const text = "x".repeat(100) + "y".repeat(300)

  it("takes the bytes read, not the file's bytes now; up to FINGERPRINT_BYTES", () =>
    withFile("another generation entirely ".repeat(20), (fd) => {
      const short = { fingerprint: "", fingerprintBytes: 0, prefix: Buffer.alloc(0) }
      const first = extendedBy(fd, short, 0, Buffer.from(text.slice(0, 100)))!
      assert.strictEqual(first.prefix.toString(), text.slice(0, 100))
      const second = extendedBy(fd, first, 100, Buffer.from(text.slice(100)))!
      assert.strictEqual(second.fingerprintBytes, FINGERPRINT_BYTES)
      assert.strictEqual(second.prefix.toString(), text.slice(0, FINGERPRINT_BYTES))
      assert.isUndefined(extendedBy(fd, second, 256, Buffer.from("more")), "already whole")
    }))

  it("refuses a gap, and a checkpoint's print whose bytes the file no longer has", () =>
    withFile(text, (fd) => {
      const read = fingerprintOf(fd, 50)
      assert.isUndefined(extendedBy(fd, read, 60, Buffer.from("y")), "a gap after the print")
      // A checkpoint keeps the hash only: its bytes are read from the file and must hash the same.
      const saved = { fingerprint: read.fingerprint, fingerprintBytes: 50 }
      assert.strictEqual(extendedBy(fd, saved, 50, Buffer.from(text.slice(50, 80)))!.prefix.toString(), text.slice(0, 80))
      const other = { fingerprint: "not this file", fingerprintBytes: 50 }
      assert.isUndefined(extendedBy(fd, other, 50, Buffer.from(text.slice(50, 80))))
    }))
})
