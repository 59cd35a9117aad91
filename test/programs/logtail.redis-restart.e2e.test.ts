/**
 * Redis restarting under two logtail replicas (the built bundle): a Redis of the test's own, killed
 * and started again empty mid-tail. The tail resumes and what it missed is counted; the lines that
 * arrived meanwhile are stored once Redis is back; the tail's route (in a real Postgres datasource)
 * survives Redis losing its state; sessions work again.
 */
import { assert, describe, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import * as Bundle from "../helpers/Bundle.ts"
import { bySender, createTail, follow, messages, metric, numbered, on, ready, sendTcp, sleep, until } from "../helpers/LogtailClient.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"
import * as Postgres from "../helpers/Postgres.ts"
import * as RedisServer from "../helpers/RedisServer.ts"

const bundle = Bundle.forTests()

const LEASE_SECONDS = 3

describe("logtail replicas when Redis restarts", () => {
  it("Redis killed and started again empty mid-tail: the tail resumes, its misses are counted, lines are stored, the route stays", async () => {
    const [redisPort, httpPort, syslogPort] = await freePorts(3)
    const redis = await RedisServer.start(redisPort!)
    const db = Postgres.create()
    const hosts = ["127.0.0.1", "127.0.0.2"]
    const replicas = hosts.map((host) =>
      LogtrainProcess.startScript(bundle.script("logtail"), {
        HTTP_PORT: String(httpPort),
        LISTEN_ADDRESS: host,
        SYSLOG_TCP: "true",
        SYSLOG_TCP_PORT: String(syslogPort),
        STORAGE_ADAPTER: "redis",
        DEIS_LOGGER_REDIS_SERVICE_PORT: String(redisPort),
        LOGTAIL_TAIL_LEASE: `${LEASE_SECONDS}s`,
        POSTGRES: "true",
        DATABASE_URL: db.url,
        NAME: "127.0.0.4"
      })
    )
    const base = (i: number) => `http://${hosts[i]}:${httpPort}`
    const routes = () => db.sql("select hostname from drains").split("\n").filter((l) => l !== "")
    const app = `rs-${randomBytes(3).toString("hex")}.shop`
    const abort = new AbortController()
    const sending = { on: true, sent: 0 }
    let sender: Promise<void> = Promise.resolve()
    try {
      await Promise.all(replicas.map((process, i) => ready(hosts[i]!, httpPort!, process)))
      const tail = await follow(on(await createTail(base(0), app), base(1)), abort.signal)
      await until(() => routes().length === 1, "the tail's route")
      // Lines into replica 1, published to the tail on replica 2.
      sender = (async () => {
        while (sending.on) {
          await sendTcp(syslogPort!, numbered(app, "r1", sending.sent, 10), hosts[0]).catch(() => undefined)
          sending.sent += 10
          await sleep(10)
        }
      })()
      await until(() => tail.lines.length >= 100, "lines before Redis goes")

      await redis.kill()
      await sleep(1000)
      await redis.start()
      // Redis came back empty: the replica serving the tail takes its lease again, and the route,
      // which Redis no longer knows of, is left alone meanwhile.
      const at = tail.lines.length
      await until(() => tail.lines.length >= at + 200, "lines after Redis came back", 20_000)
      sending.on = false
      await sender
      await sleep(LEASE_SECONDS * 1000)
      assert.deepStrictEqual(routes(), [app])

      // One more line: a gap before it is noticed.
      await sendTcp(syslogPort!, numbered(app, "r1", sending.sent, 1), hosts[0])
      sending.sent++
      await until(() => bySender(messages(tail.lines)).get("r1")?.at(-1) === sending.sent - 1, "the last line")
      const received = bySender(messages(tail.lines)).get("r1")!
      for (let i = 1; i < received.length; i++) assert.isAbove(received[i]!, received[i - 1]!)
      const missed = await metric(httpPort!, "logtail_tail_missed_total", "", hosts[1])
      assert.strictEqual(received.length + missed, sending.sent, `received ${received.length}, missed ${missed}, sent ${sending.sent}`)
      assert.isAbove(missed, 0)
      // Every line was stored in the end (what arrived while Redis was away waited for it).
      await until(async () => (await metric(httpPort!, "logtail_lines_stored_total", "", hosts[0])) === sending.sent, "every line stored", 15_000)
      // Sessions work again, on either replica.
      const again = new AbortController()
      const second = await follow(on(await createTail(base(1), app), base(0)), again.signal)
      assert.strictEqual(second.response.status, 200)
      again.abort()
      await second.done
      // A lost connection is one warning, not one per reconnection attempt.
      const warnings = replicas[0]!.stderr().split("\n").filter((line) => line.includes("level=WARN") && /Redis/.test(line))
      assert.isAtMost(warnings.length, 4, warnings.join("\n"))
    } finally {
      sending.on = false
      await sender
      abort.abort()
      await Promise.all(replicas.map((r) => r.stop()))
      await redis.kill()
      db.drop()
    }
  }, 60_000)
})
