import { assert, describe, it } from "@effect/vitest"
import * as Rfc3164 from "../../src/domain/syslog/Rfc3164.ts"
import * as Syslog from "../../src/domain/syslog/Syslog.ts"
import type { LogPacket } from "../../src/domain/LogPacket.ts"

describe("RFC 3164 year inference", () => {
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    // line time, received at, expected
    ["Dec 31 23:59:59", "2025-01-01T00:00:05Z", "2024-12-31T23:59:59.000Z"],
    ["Jan  1 00:00:01", "2024-12-31T23:59:58Z", "2025-01-01T00:00:01.000Z"],
    ["Jun 15 08:00:00", "2024-06-15T09:00:00Z", "2024-06-15T08:00:00.000Z"],
    ["Aug  1 00:00:00", "2024-01-01T00:00:00Z", "2023-08-01T00:00:00.000Z"],
    ["Jun 30 00:00:00", "2024-01-01T00:00:00Z", "2024-06-30T00:00:00.000Z"]
  ]
  for (const [stamp, receivedAt, expected] of cases) {
    it(`${stamp} received ${receivedAt} is ${expected}`, () => {
      const packet = Syslog.parse(`<13>${stamp} host app: x`, new Date(receivedAt)) as LogPacket
      assert.strictEqual(packet.time.toISOString(), expected)
    })
  }

  it("reads fractional seconds", () => {
    const packet = Syslog.parse("<13>Mar  1 11:59:59.250 host app: x", new Date("2024-03-01T12:00:00Z")) as LogPacket
    assert.strictEqual(packet.time.toISOString(), "2024-03-01T11:59:59.250Z")
  })

  it("uses the fallback hostname when the sender left it out", () => {
    const packet = Rfc3164.parse("<13>Mar  1 11:59:59 app: x", new Date("2024-03-01T12:00:00Z"), "10.1.2.3") as LogPacket
    assert.strictEqual(packet.hostname, "10.1.2.3")
    assert.strictEqual(packet.tag, "app")
  })

  it("treats a bad timestamp as part of the header rather than failing", () => {
    const packet = Syslog.parse("<13>Foo 99 99:99:99 host app: x", new Date("2024-03-01T12:00:00Z")) as LogPacket
    assert.isFalse(Syslog.isParseError(packet))
    assert.strictEqual(packet.time.toISOString(), "2024-03-01T12:00:00.000Z")
  })
})
