/**
 * logtrain as a process with its Postgres features on: routes from the drains table, and
 * persistent:// logs served at /logs/:key — against the machine's real PostgreSQL.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"
import * as TestPostgres from "../helpers/Postgres.ts"

const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const line = (i: number) => `<14>1 2024-01-01T00:00:00.000Z pod-7f9c build - - - step ${i}`

const send = (port: number, text: string) =>
  new Promise<void>((resolve, reject) => {
    const socket = Net.createConnection({ host: "127.0.0.1", port }, () => socket.end(text, () => resolve()))
    socket.on("error", reject)
  })

describe("logtrain with Postgres", () => {
  it("stores 100k lines for a routed key, serves them in order (and a tail), and loses none across a restart (DRAIN_WHEN_FULL=block)", async () => {
    const db = TestPostgres.create()
    const [http, tcp] = await freePorts(2)
    const env = {
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      POSTGRES: "true",
      DATABASE_URL: db.url,
      PERSISTENT: "true",
      PERSISTENT_DATABASE_URL: db.url,
      // Bursts of 60k lines: wait for the database rather than drop what does not fit the buffer.
      DRAIN_WHEN_FULL: "block"
    }
    let lt = LogtrainProcess.start(env)
    try {
      await LogtrainProcess.ready(lt)
      // The route comes from the drains table, like any other.
      db.sql(`insert into drains (hostname, endpoint) values ('pod-7f9c', 'persistent://build-42')`)
      await sleep(500)
      await send(tcp!, Array.from({ length: 60_000 }, (_, i) => octet(line(i))).join(""))
      // A restart in the middle: what was sent before SIGTERM must all be stored.
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      lt = LogtrainProcess.start(env)
      await LogtrainProcess.ready(lt)
      await sleep(300)
      await send(tcp!, Array.from({ length: 40_000 }, (_, i) => octet(line(60_000 + i))).join(""))

      const deadline = Date.now() + 20_000
      let body = ""
      while (Date.now() < deadline) {
        body = await fetch(`http://127.0.0.1:${http}/logs/build-42`).then((r) => r.text())
        if (body.split("\n").length > 100_000) break
        await sleep(250)
      }
      const got = body.trimEnd().split("\n").map((l) => l.slice(l.lastIndexOf(" ") + 1))
      assert.strictEqual(got.length, 100_000, lt.stderr().split("\n").filter((l) => !l.includes("level=INFO")).join("\n").slice(0, 3000))
      assert.deepStrictEqual(got.slice(0, 3), ["0", "1", "2"])
      assert.isTrue(got.every((n, i) => n === String(i)), "every line, in order")
      const tail = await fetch(`http://127.0.0.1:${http}/logs/build-42?lines=2`).then((r) => r.text())
      assert.deepStrictEqual(tail.trimEnd().split("\n").map((l) => l.slice(l.lastIndexOf(" ") + 1)), ["99998", "99999"])
      assert.strictEqual((await fetch(`http://127.0.0.1:${http}/logs/no-such-key`)).status, 404)
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      db.drop()
    }
  }, 90_000)

  it("refuses to start, naming the variable, when a Postgres feature has no database URL", async () => {
    for (const [flag, variable] of [["POSTGRES", "DATABASE_URL"], ["PERSISTENT", "PERSISTENT_DATABASE_URL"]] as const) {
      const [http, tcp] = await freePorts(2)
      const lt = LogtrainProcess.start({ HTTP_PORT: String(http), SYSLOG_TCP: "true", SYSLOG_TCP_PORT: String(tcp), [flag]: "true" })
      assert.strictEqual(await lt.exited(), 1, lt.stderr())
      assert.include(lt.stderr(), `${flag}=true needs ${variable}`)
    }
  }, 30_000)
})
