import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import * as DeisMessage from "../../src/domain/DeisMessage.ts"

const dir = join(import.meta.dirname, "../fixtures/nsq")

interface Fixture {
  readonly about: string
  readonly body: unknown
  readonly app?: string
  readonly line?: string
  readonly error?: string
}

/** The raw message body: fixtures hold it as JSON, or as the text itself when it is not JSON. */
const bodyOf = (fixture: Fixture): string => typeof fixture.body === "string" ? fixture.body : JSON.stringify(fixture.body)

describe("Deis Workflow messages from NSQ (recorded fixtures)", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".json")).toSorted()
  it("has fixtures", () => assert.isAtLeast(files.length, 6))
  for (const file of files) {
    const fixture = JSON.parse(readFileSync(join(dir, file), "utf8")) as Fixture
    it(`${file}: ${fixture.about}`, () => {
      const result = DeisMessage.parse(bodyOf(fixture))
      if (fixture.error !== undefined) {
        assert.instanceOf(result, DeisMessage.DeisMessageError)
        assert.include((result as DeisMessage.DeisMessageError).message, fixture.error)
      } else {
        assert.notInstanceOf(result, DeisMessage.DeisMessageError)
        const line = result as DeisMessage.DeisLine
        assert.deepStrictEqual([line.app, line.line], [fixture.app, fixture.line])
      }
    })
  }
})
