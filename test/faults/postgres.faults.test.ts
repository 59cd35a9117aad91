/**
 * Issue 21, row E, on the built bundle: the Postgres datasource (POSTGRES=true) against a cluster
 * of the test's own, stopped with `-m immediate` (a crash: every connection cut) four times for
 * 2 s, 5 s apart. Each time logtrain must notice (/readyz 503), be ready again within about 2 s
 * of the database accepting connections, and apply the route change made while it was away (read
 * again on reconnection: NOTIFY is not kept for a listener that is gone); its warning must say
 * why it could not connect.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Bundle from "../helpers/Bundle.ts"
import { warnings } from "../helpers/DrainFaults.ts"
import { metric } from "../helpers/LogtailClient.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import * as PostgresCluster from "../helpers/PostgresCluster.ts"
import { freePorts } from "../helpers/ports.ts"

const bundle = Bundle.forTests()

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls until `condition` holds; the time it took (ms), or Infinity after `timeoutMs`. */
const within = async (condition: () => Promise<boolean>, timeoutMs: number): Promise<number> => {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (await condition()) return Date.now() - start
    await sleep(25)
  }
  return Number.POSITIVE_INFINITY
}

describe("Postgres datasource, database restarts (issue 21, E)", () => {
  it("four 2 s outages 5 s apart: /readyz back within 2 s of each restart, the route added meanwhile applied, the warning names the cause", async () => {
    const db = await PostgresCluster.create()
    const [http, tcp] = await freePorts(2)
    const lt = LogtrainProcess.startScript(bundle.script("logtrain"), {
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      POSTGRES: "true",
      DATABASE_URL: db.url
    })
    const ready = () => fetch(`http://127.0.0.1:${http}/readyz`).then((r) => r.ok, () => false)
    const routes = () => metric(http!, "logtrain_routes")
    try {
      await LogtrainProcess.ready(lt)
      db.sql(`insert into drains (hostname, endpoint) values ('app-0', 'syslog+tcp://127.0.0.1:9')`)
      assert.isBelow(await within(async () => (await routes()) === 1, 5000), 5000, "the first route")
      const rounds: Array<{ noticed: number; ready: number; applied: number }> = []
      for (let i = 1; i <= 4; i++) {
        const start = Date.now()
        db.stop()
        const noticed = await within(async () => !(await ready()), 2000)
        await sleep(start + 2000 - Date.now())
        db.start()
        // A change logtrain cannot be told of: it must read it when it connects again.
        db.sql(`insert into drains (hostname, endpoint) values ('app-${i}', 'syslog+tcp://127.0.0.1:9')`)
        const back = Date.now()
        const readyAfter = await within(ready, 30_000)
        await within(async () => (await routes()) === i + 1, 30_000)
        rounds.push({ noticed, ready: readyAfter, applied: Date.now() - back })
        await sleep(start + 5000 - Date.now())
      }
      const numbers = `per outage (ms after the database was back): ${JSON.stringify(rounds)}\n${warnings(lt.stderr())}`
      if (process.env.FAULTS_VERBOSE !== undefined) console.log(`[E postgres]\n${numbers}`)
      for (const round of rounds) {
        assert.isBelow(round.noticed, 2000, `/readyz never said 503 during an outage: ${numbers}`)
        assert.isAtMost(round.ready, 2000, numbers)
        assert.isAtMost(round.applied, 2500, numbers)
      }
      // The warning says why it could not connect, not only that it could not.
      assert.match(lt.stderr(), /postgres[^\n]*ECONNREFUSED/, numbers)
    } finally {
      const code = await lt.stop()
      db.destroy()
      assert.strictEqual(code, 0, warnings(lt.stderr()))
    }
  }, 90_000)
})
