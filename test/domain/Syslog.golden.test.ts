/**
 * Golden wire fixtures: every `test/fixtures/syslog/<case>.txt` line must parse into `<case>.json`.
 */
import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import * as Syslog from "../../src/domain/syslog/Syslog.ts"

const dir = join(import.meta.dirname, "../fixtures/syslog")
const receivedAt = new Date("2024-03-01T12:00:00.000Z")
const cases = readdirSync(dir).filter((f) => f.endsWith(".txt")).map((f) => f.slice(0, -4)).toSorted()

describe("syslog golden fixtures", () => {
  it("has fixtures to check", () => {
    assert.isAtLeast(cases.length, 20)
  })

  for (const name of cases) {
    it(`parses ${name}`, () => {
      const line = readFileSync(join(dir, `${name}.txt`), "utf8")
      const expected = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8"))
      const result = Syslog.parse(line, receivedAt)
      if (Syslog.isParseError(result)) {
        assert.deepStrictEqual({ error: result.reason }, expected)
        return
      }
      const actual: Record<string, unknown> = {
        time: result.time.toISOString(),
        hostname: result.hostname,
        tag: result.tag,
        message: result.message,
        severity: result.severity,
        facility: result.facility
      }
      if (result.procId !== undefined) actual.procId = result.procId
      if (result.msgId !== undefined) actual.msgId = result.msgId
      if (result.structuredData !== undefined) actual.structuredData = result.structuredData
      actual.forwardedAsIs = result.rfc5424 !== undefined
      assert.deepStrictEqual(actual, expected)
      if (result.rfc5424 !== undefined) assert.strictEqual(result.rfc5424, line.replace(/\n$/, ""))
    })
  }
})
