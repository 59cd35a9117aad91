/**
 * logtail as a process, with logtrain agents in front of it: the recent-logs API, and live tails
 * that write their route to the real Postgres datasource which a logtrain follows.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import { follow } from "../helpers/LogtailClient.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"
import * as Postgres from "../helpers/Postgres.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const until = async (condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** Sends octet-counted syslog lines over one TCP connection. */
const sendTcp = (port: number, lines: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const socket = Net.createConnection({ host: "127.0.0.1", port }, () => {
      socket.end(lines.map((l) => `${Buffer.byteLength(l)} ${l}`).join(""), () => resolve())
    })
    socket.once("error", reject)
  })

const rfc5424 = (host: string, i: number) => `<14>1 2026-01-01T00:00:0${i % 10}.000Z ${host} web.1 - - - line ${i}`

const metric = async (httpPort: number, name: string) => {
  const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text(), () => "")
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m").exec(text)?.[1] ?? Number.NaN)
}

describe("logtail end to end", () => {
  it("logtrain → logtail over syslog TCP: GET /logs/:app gives each app's last NUMBER_OF_LINES, in Deis's format", async () => {
    const [ltHttp, ltTcp, tailHttp, tailTcp] = await freePorts(4)
    const logtail = LogtrainProcess.startLogtail({
      HTTP_PORT: String(tailHttp),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tailTcp),
      NUMBER_OF_LINES: "20"
    })
    // The agent routes every app to logtail, as a `*` route in a routes file or ROUTES does.
    const logtrain = LogtrainProcess.start({
      HTTP_PORT: String(ltHttp),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(ltTcp),
      ROUTES: JSON.stringify({ "*": [`syslog+tcp://127.0.0.1:${tailTcp}`] })
    })
    try {
      await Promise.all([LogtrainProcess.ready(logtail), LogtrainProcess.ready(logtrain)])
      await sendTcp(ltTcp!, [
        ...Array.from({ length: 30 }, (_, i) => rfc5424("api.shop", i)),
        ...Array.from({ length: 5 }, (_, i) => rfc5424("db.shop", i))
      ])
      const logs = (app: string, query = "") => fetch(`http://127.0.0.1:${tailHttp}/logs/${app}${query}`)
      await until(async () => (await (await logs("api.shop", "?log_lines=100")).text()).includes("line 29"), "api.shop's last line")
      const api = await logs("api.shop", "?log_lines=100")
      assert.strictEqual(api.status, 200)
      assert.deepStrictEqual(
        (await api.text()).split("\n"),
        [...Array.from({ length: 20 }, (_, n) => `2026-01-01T00:00:0${(n + 10) % 10}+00:00 api.shop[web.1]: line ${n + 10}`), ""]
      )
      assert.deepStrictEqual((await (await logs("api.shop", "?log_lines=2")).text()).trimEnd().split("\n").map((l) => l.slice(-7)), ["line 28", "line 29"])
      // An invalid count is 100, as deis/logger: here, all 5 of db.shop.
      assert.strictEqual((await (await logs("db.shop", "?log_lines=lots")).text()).trimEnd().split("\n").length, 5)
      assert.strictEqual((await logs("unknown.shop")).status, 204)
      assert.strictEqual((await fetch(`http://127.0.0.1:${tailHttp}/logs/api.shop`, { method: "DELETE" })).status, 200)
      assert.strictEqual((await logs("api.shop")).status, 204)
      assert.strictEqual((await logs("db.shop", "?log_lines=1")).status, 200)
      assert.strictEqual((await fetch(`http://127.0.0.1:${tailHttp}/healthz`)).status, 200)
      assert.strictEqual(await logtail.stop(), 0)
    } finally {
      await Promise.all([logtail.stop(), logtrain.stop()])
    }
  }, 60_000)

  it("refuses to start, in one line naming what is wrong, when configuration is wrong", async () => {
    const cases: ReadonlyArray<readonly [Record<string, string>, string]> = [
      [{ STORAGE_ADAPTER: "mem" }, "STORAGE_ADAPTER: expected"],
      [{ NUMBER_OF_LINES: "0" }, "NUMBER_OF_LINES"],
      [{ STORAGE_ADAPTER: "redis", DEIS_LOGGER_REDIS_SERVICE_PORT: "1" }, "redis storage: cannot connect to 127.0.0.1:1/0: connect ECONNREFUSED"],
      [{ STORAGE_ADAPTER: "file", STORAGE_FILE_DIR: "/etc/hostname/logs" }, "file storage: /etc/hostname/logs: ENOTDIR"],
      [{ AGGREGATOR_TYPE: "nsq" }, "AGGREGATOR_TYPE=nsq needs DEIS_NSQD_SERVICE_HOST"],
      [{ AGGREGATOR_TYPE: "kafka" }, "AGGREGATOR_TYPE: expected"],
      [{ POSTGRES: "true" }, "POSTGRES=true needs DATABASE_URL"],
      [{ LOGTAIL_TAIL_LEASE: "0s" }, "LOGTAIL_TAIL_LEASE: expected at least 1s"],
      [{ STORAGE_MEMORY_MAX_APPS: "0" }, "STORAGE_MEMORY_MAX_APPS"],
      [{ STORAGE_ADAPTER: "redis", REDIS_URL: "redis://user:S3cret@127.0.0.1:1/0" }, "redis storage: cannot connect to redis://***@127.0.0.1:1/0"]
    ]
    for (const [env, expected] of cases) {
      const [http, tcp, udp] = await freePorts(3)
      const lt = LogtrainProcess.startLogtail({ HTTP_PORT: String(http), SYSLOG_TCP_PORT: String(tcp), SYSLOG_UDP_PORT: String(udp), ...env })
      const code = await Promise.race([lt.exited(), sleep(15_000).then(() => "still running")])
      await lt.stop()
      assert.strictEqual(code, 1, `${JSON.stringify(env)}: ${lt.stderr()}`)
      const errors = lt.stderr().split("\n").filter((line) => line.includes("level=ERROR"))
      assert.strictEqual(errors.length, 1, lt.stderr())
      assert.include(errors[0], `logtail cannot start: `)
      assert.include(errors[0], expected)
      assert.notInclude(lt.stderr(), "S3cret")
    }
  }, 120_000)

  it("a wrong command line is one line with logtail's own usage; --help prints it", async () => {
    const [http, tcp, udp] = await freePorts(3)
    const env = { HTTP_PORT: String(http), SYSLOG_TCP_PORT: String(tcp), SYSLOG_UDP_PORT: String(udp) }
    const wrong = LogtrainProcess.startLogtail(env, ["--verbose"])
    assert.strictEqual(await wrong.exited(), 1, wrong.stderr())
    const errors = wrong.stderr().split("\n").filter((line) => line.includes("level=ERROR"))
    assert.strictEqual(errors.length, 1, wrong.stderr())
    assert.include(errors[0], "logtail cannot start: Unknown option '--verbose'")
    assert.include(errors[0], "usage: logtail [--kube-config <file>]")
    const help = LogtrainProcess.startLogtail(env, ["--help"])
    assert.strictEqual(await help.exited(), 0, help.stderr())
    assert.include(help.stdout(), "usage: logtail [--kube-config <file>]")
  }, 30_000)

  it("a live tail routes its app to logtail through Postgres while it is open, streams the lines, and removes the route", async () => {
    const db = Postgres.create()
    const [ltHttp, ltTcp, tailHttp, tailTcp] = await freePorts(4)
    const endpoint = `syslog+tcp://127.0.0.1:${tailTcp}`
    const logtailEnv = {
      HTTP_PORT: String(tailHttp),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tailTcp),
      POSTGRES: "true",
      DATABASE_URL: db.url,
      // Its Service: agents reach it at NAME (.NAMESPACE when set).
      NAME: "127.0.0.1"
    }
    let logtail = LogtrainProcess.startLogtail(logtailEnv)
    const logtrain = LogtrainProcess.start({
      HTTP_PORT: String(ltHttp),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(ltTcp),
      POSTGRES: "true",
      DATABASE_URL: db.url
    })
    const routesInDb = () => db.sql("select hostname || ' ' || endpoint from drains order by hostname").split("\n").filter((l) => l !== "")
    try {
      await Promise.all([LogtrainProcess.ready(logtail), LogtrainProcess.ready(logtrain)])
      assert.deepStrictEqual(routesInDb(), [])

      const created = await fetch(`http://127.0.0.1:${tailHttp}/tails`, { method: "POST", body: JSON.stringify({ hostname: "web.shop" }) })
      assert.strictEqual(created.status, 201)
      const { url } = await created.json() as { url: string }
      assert.strictEqual(created.headers.get("location"), url)
      assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${tailHttp}/tails/[0-9a-f-]{36}$`))

      const abort = new AbortController()
      const tail = await follow(url, abort.signal)
      assert.strictEqual(tail.response.status, 200)
      assert.strictEqual(tail.response.headers.get("content-type"), "text/syslog+rfc5424; charset=utf-8")
      await until(() => routesInDb().includes(`web.shop ${endpoint}`), "the tail's route in Postgres")
      // logtrain follows the table (NOTIFY): once it routes web.shop, its lines flow to logtail.
      await until(async () => (await metric(ltHttp!, "logtrain_routes")) === 1, "logtrain to follow the route")
      const sent = Array.from({ length: 10 }, (_, i) => rfc5424("web.shop", i))
      await sendTcp(ltTcp!, [...sent, rfc5424("other.shop", 1)])
      await until(() => tail.lines.length >= 10, "the tailed lines")
      assert.deepStrictEqual(tail.lines, sent)

      abort.abort()
      await tail.done
      await until(() => routesInDb().length === 0, "the route to be removed when the client went away")
      await until(async () => (await metric(ltHttp!, "logtrain_routes")) === 0, "logtrain to drop the route")

      // Replay: a new tail with ?lines=3 starts with the last 3 buffered lines (as RFC 5424).
      const again = await (await fetch(`http://127.0.0.1:${tailHttp}/tails`, { method: "POST", body: '{"hostname":"web.shop"}' })).json() as {
        url: string
      }
      const abort2 = new AbortController()
      const replay = await follow(`${again.url}?lines=3`, abort2.signal)
      await until(() => replay.lines.length >= 3, "the replayed lines")
      assert.deepStrictEqual(replay.lines.map((l) => l.replace(/^\S+ \S+ /, "")), [
        "web.shop web.1 - - - line 7",
        "web.shop web.1 - - - line 8",
        "web.shop web.1 - - - line 9"
      ])
      // A tail's URL is used once.
      assert.strictEqual((await fetch(again.url)).status, 404)
      await until(() => routesInDb().length === 1, "the second tail's route")

      // logtail killed while the tail is open leaves its route behind; started again, it removes it.
      logtail.child.kill("SIGKILL")
      await logtail.exited()
      abort2.abort()
      assert.deepStrictEqual(routesInDb(), [`web.shop ${endpoint}`])
      logtail = LogtrainProcess.startLogtail(logtailEnv)
      await LogtrainProcess.ready(logtail)
      await until(() => routesInDb().length === 0, "the stale route to be removed at start")
      await until(() => /removed stale tail routes.*count=1/.test(logtail.stderr()), "logtail to say so")
    } finally {
      await Promise.all([logtail.stop(), logtrain.stop()])
      db.drop()
    }
  }, 60_000)
})
