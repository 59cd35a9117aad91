/**
 * logtail as it runs in Kubernetes with several replicas: three processes of the built bundle on
 * 127.0.0.1-3 behind a stand-in for their Service (127.0.0.4, handing each connection to the next
 * replica), one Redis (the machine's; a key prefix of each test's own), a real Postgres datasource
 * the tails write their routes to, and a logtrain agent following it.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { createClient } from "redis"
import { afterAll, beforeAll } from "vitest"
import * as Bundle from "../helpers/Bundle.ts"
import { bySender, createTail, follow, messages, metric, numbered, on, ready, rfc5424, sendTcp, sleep, until } from "../helpers/LogtailClient.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"
import * as Postgres from "../helpers/Postgres.ts"
import * as TcpBalancer from "../helpers/TcpBalancer.ts"

const bundle = Bundle.forTests()
// One cluster for the file (each test tails apps of its own); the test that kills replica 1 runs last.
let cluster: Awaited<ReturnType<typeof startCluster>>
beforeAll(async () => {
  cluster = await startCluster()
}, 90_000)
afterAll(async () => {
  await cluster?.stop()
}, 30_000)

const LEASE_SECONDS = 3
const SERVICE = "127.0.0.4"

interface Replica {
  readonly host: string
  process: LogtrainProcess.LogtrainProcess
  /** Its id in Redis (leases, client names), new at each start. */
  readonly id: () => string
}

const startCluster = async () => {
  const db = Postgres.create()
  const [httpPort, syslogPort, agentHttp, agentTcp] = await freePorts(4)
  const prefix = `logtail-test-${randomBytes(4).toString("hex")} `
  const env = (host: string) => ({
    HTTP_PORT: String(httpPort),
    LISTEN_ADDRESS: host,
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(syslogPort),
    STORAGE_ADAPTER: "redis",
    DEIS_LOGGER_REDIS_DB: "6",
    LOGTAIL_REDIS_PREFIX: prefix,
    LOGTAIL_TAIL_LEASE: `${LEASE_SECONDS}s`,
    POSTGRES: "true",
    DATABASE_URL: db.url,
    // The Service: agents send tailed apps to syslog+tcp://127.0.0.4:<port>.
    NAME: SERVICE
  })
  const startReplica = (host: string) => LogtrainProcess.startScript(bundle.script("logtail"), env(host))
  const replicas: Array<Replica> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"].map((host) => {
    const replica: Replica = {
      host,
      process: startReplica(host),
      id: () => /live tails across replicas through Redis" replica=([0-9a-f]+)/.exec(replica.process.stderr())?.[1] ?? ""
    }
    return replica
  })
  const service = await TcpBalancer.listen(SERVICE, syslogPort!, replicas.map((r) => ({ host: r.host, port: syslogPort! })))
  const agent = LogtrainProcess.startScript(bundle.script("logtrain"), {
    HTTP_PORT: String(agentHttp),
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(agentTcp),
    POSTGRES: "true",
    DATABASE_URL: db.url
  })
  await Promise.all([...replicas.map((r) => ready(r.host, httpPort!, r.process)), LogtrainProcess.ready(agent)])
  const endpoint = `syslog+tcp://${SERVICE}:${syslogPort}`
  return {
    db,
    replicas,
    endpoint,
    agentTcp: agentTcp!,
    agentHttp: agentHttp!,
    http: (i: number) => `http://${replicas[i]!.host}:${httpPort}`,
    send: (i: number, lines: ReadonlyArray<string>) => sendTcp(syslogPort!, lines, replicas[i]!.host),
    metric: (i: number, name: string) => metric(httpPort!, name, "", replicas[i]!.host),
    routes: () => db.sql("select hostname || ' ' || endpoint from drains order by 1").split("\n").filter((l) => l !== ""),
    restart: async (i: number, signal: NodeJS.Signals = "SIGTERM") => {
      await replicas[i]!.process.stop(signal)
      replicas[i]!.process = startReplica(replicas[i]!.host)
      await ready(replicas[i]!.host, httpPort!, replicas[i]!.process)
    },
    start: async (i: number) => {
      replicas[i]!.process = startReplica(replicas[i]!.host)
      await ready(replicas[i]!.host, httpPort!, replicas[i]!.process)
    },
    stop: async () => {
      await Promise.all([...replicas.map((r) => r.process.stop()), agent.stop(), service.stop()])
      db.drop()
      // Whatever the test left under its prefix.
      const keys = execFileSync("redis-cli", ["-n", "6", "--scan", "--pattern", `${prefix}*`], { encoding: "utf8" }).split("\n").filter((k) => k !== "")
      for (const key of keys) execFileSync("redis-cli", ["-n", "6", "DEL", key])
    }
  }
}

describe("logtail with three replicas sharing Redis", () => {
  it("a tail made on replica 1 is read on replica 2 and shows the lines every replica receives, in order per sender; ?lines=N replays from Redis; 404s say why", async () => {
    const app = `web-${randomBytes(3).toString("hex")}.shop`
    const abort = new AbortController()
    try {
      const url = await createTail(cluster.http(0), app)
      const tail = await follow(on(url, cluster.http(1)), abort.signal)
      assert.strictEqual(tail.response.status, 200)
      // The route is written once, to the Service, and the agent follows it.
      await until(() => cluster.routes().includes(`${app} ${cluster.endpoint}`), "the tail's route in Postgres")
      assert.deepStrictEqual(cluster.routes(), [`${app} ${cluster.endpoint}`])
      await until(async () => (await metric(cluster.agentHttp, "logtrain_routes")) === 1, "the agent to follow the route")

      // Senders on each replica, and the agent (whose drain goes through the Service).
      await Promise.all([
        cluster.send(0, numbered(app, "r1", 0, 300)),
        cluster.send(1, numbered(app, "r2", 0, 300)),
        cluster.send(2, numbered(app, "r3", 0, 300)),
        sendTcp(cluster.agentTcp, [...numbered(app, "agent", 0, 300), rfc5424("other.shop", "not tailed")])
      ])
      await until(() => tail.lines.length >= 1200, "every line on the tail", 15_000)
      await sleep(300)
      const senders = bySender(messages(tail.lines))
      for (const sender of ["r1", "r2", "r3", "agent"]) {
        assert.deepStrictEqual(senders.get(sender), Array.from({ length: 300 }, (_, i) => i), sender)
      }
      assert.strictEqual(tail.lines.length, 1200)

      // Replay: a tail opened on replica 3 with ?lines=5 begins with the last 5 stored (Redis, as deis/logger).
      const stored = async () => (await Promise.all([0, 1, 2].map((i) => cluster.metric(i, "logtail_lines_stored_total")))).reduce((a, b) => a + b)
      await until(async () => (await stored()) === 1200, "every line stored")
      const last = (await (await fetch(`${cluster.http(2)}/logs/${app}?log_lines=5`)).text()).trimEnd().split("\n").map((l) => l.slice(l.lastIndexOf(" ") + 1))
      const replayAbort = new AbortController()
      const replay = await follow(`${on(await createTail(cluster.http(1), app), cluster.http(2))}?lines=5`, replayAbort.signal)
      await until(() => replay.lines.length >= 5, "the replayed lines")
      assert.strictEqual(last.length, 5)
      assert.deepStrictEqual(messages(replay.lines.slice(0, 5)), last)
      replayAbort.abort()
      await replay.done

      // Why a tail cannot be opened, from any replica.
      const used = await fetch(on(url, cluster.http(2)))
      assert.strictEqual(used.status, 404)
      assert.include(await used.text(), "already opened")
      const unknown = await fetch(`${cluster.http(0)}/tails/${crypto.randomUUID()}`)
      assert.strictEqual(unknown.status, 404)
      assert.include(await unknown.text(), "unknown id")
      const malformed = await fetch(`${cluster.http(0)}/tails/not-an-id`)
      assert.strictEqual(malformed.status, 404)
      assert.include(await malformed.text(), "malformed")

      // The last tail closes (on replica 2): the route goes.
      abort.abort()
      await tail.done
      await until(() => cluster.routes().length === 0, "the route to be removed after the last tail")
    } finally {
      abort.abort()
    }
  }, 90_000)

  it("Redis connections killed (CLIENT KILL) mid-tail: the tail resumes, and every line it missed is counted", async () => {
    const app = `db-${randomBytes(3).toString("hex")}.shop`
    const abort = new AbortController()
    const sending = { on: true }
    let senders: Promise<void> = Promise.resolve()
    try {
      const tail = await follow(on(await createTail(cluster.http(0), app), cluster.http(1)), abort.signal)
      await until(() => cluster.routes().length === 1, "the tail's route")
      // Lines flow to replicas 1 and 3 (published to the tail on replica 2) while their connections,
      // and replica 2's, are killed.
      const sent = { r1: 0, r3: 0 }
      senders = (async () => {
        while (sending.on) {
          await Promise.all([
            cluster.send(0, numbered(app, "r1", sent.r1, 10)),
            cluster.send(2, numbered(app, "r3", sent.r3, 10))
          ])
          sent.r1 += 10
          sent.r3 += 10
          await sleep(5)
        }
      })()
      await until(() => tail.lines.length >= 200, "lines before the kill")
      const ids = cluster.replicas.map((r) => r.id())
      const admin = createClient({ socket: { host: "127.0.0.1", port: 6379 } })
      await admin.connect()
      try {
        const connections = async () =>
          (await admin.sendCommand(["CLIENT", "LIST"]) as string).split("\n")
            .filter((line) => ids.some((id) => line.includes(` name=logtail-${id} `)))
            .map((line) => ({ id: /^id=(\d+)/.exec(line)![1]!, subscriber: / sub=[1-9]/.test(line), replica: ids.findIndex((id) => line.includes(id)) }))
        const kill = (id: string) => admin.sendCommand(["CLIENT", "KILL", "ID", id]).catch(() => undefined)
        // Each replica's client and its subscriber.
        assert.strictEqual((await connections()).length, 6, JSON.stringify(await connections()))
        // Every connection of every replica at once.
        await Promise.all((await connections()).map((c) => kill(c.id)))
        let at = tail.lines.length
        await until(() => tail.lines.length >= at + 200, "lines after every connection was killed", 20_000)
        // Then the subscriber of replica 2, which serves the tail, again and again for a second
        // (it reconnects within milliseconds): what is published meanwhile is lost to it.
        const until1s = Date.now() + 1000
        while (Date.now() < until1s) {
          for (const c of await connections()) if (c.subscriber && c.replica === 1) await kill(c.id)
          await sleep(5)
        }
        at = tail.lines.length
        await until(() => tail.lines.length >= at + 200, "lines after the subscriber came back", 20_000)
      } finally {
        await admin.close()
      }
      sending.on = false
      await senders
      await sleep(500)
      // One more line from each sender: a gap before it is noticed.
      await Promise.all([cluster.send(0, numbered(app, "r1", sent.r1, 1)), cluster.send(2, numbered(app, "r3", sent.r3, 1))])
      sent.r1++
      sent.r3++
      await until(async () => {
        const got = bySender(messages(tail.lines))
        return got.get("r1")?.at(-1) === sent.r1 - 1 && got.get("r3")?.at(-1) === sent.r3 - 1
      }, "the last lines")
      const got = bySender(messages(tail.lines))
      const missed = await cluster.metric(1, "logtail_tail_missed_total")
      for (const sender of ["r1", "r3"] as const) {
        const numbers = got.get(sender)!
        // In order, none twice.
        for (let i = 1; i < numbers.length; i++) assert.isAbove(numbers[i]!, numbers[i - 1]!, sender)
      }
      const received = got.get("r1")!.length + got.get("r3")!.length
      assert.strictEqual(received + missed, sent.r1 + sent.r3, `received ${received}, missed ${missed}, sent ${sent.r1 + sent.r3}`)
      assert.isAbove(missed, 0, "lines were published while the connections were down")
    } finally {
      sending.on = false
      await senders.catch(() => undefined)
      abort.abort()
    }
    await until(() => cluster.routes().length === 0, "the route to go after the tail")
  }, 90_000)
  it("replica 3 restarting keeps a tail's route on replica 1; replica 1 SIGKILLed leaves it no longer than its lease; a new tail opens on replica 2", async () => {
    const app = `api-${randomBytes(3).toString("hex")}.shop`
    const abort = new AbortController()
    try {
      const tail = await follow(on(await createTail(cluster.http(0), app), cluster.http(0)), abort.signal)
      await until(() => cluster.routes().length === 1, "the tail's route")

      // Replica 3 restarts: its start removes only routes whose owners are gone.
      await cluster.restart(2)
      await sleep(LEASE_SECONDS * 1000)
      assert.deepStrictEqual(cluster.routes(), [`${app} ${cluster.endpoint}`])
      await cluster.send(2, numbered(app, "r3", 0, 50))
      await sendTcp(cluster.agentTcp, numbered(app, "agent", 0, 50))
      await until(() => tail.lines.length >= 100, "lines after replica 3 restarted")
      assert.strictEqual(bySender(messages(tail.lines)).get("r3")?.length, 50)

      // Replica 1, the tail's owner, is killed: nobody renews its lease.
      const killed = Date.now()
      cluster.replicas[0]!.process.child.kill("SIGKILL")
      await cluster.replicas[0]!.process.exited()
      await until(() => cluster.routes().length === 0, "the route to go", (LEASE_SECONDS + 3) * 1000)
      const gone = Date.now() - killed
      assert.isAtMost(gone, (LEASE_SECONDS + 2) * 1000, `route removed ${gone} ms after the kill`)
      assert.isAtLeast(await cluster.metric(1, "logtail_tail_routes_expired_total") + await cluster.metric(2, "logtail_tail_routes_expired_total"), 1)

      // A client opens a new tail on replica 2.
      const again = new AbortController()
      const second = await follow(on(await createTail(cluster.http(1), app), cluster.http(1)), again.signal)
      await until(() => cluster.routes().length === 1, "the new tail's route")
      await cluster.send(2, numbered(app, "r3", 50, 20))
      await until(() => second.lines.length >= 20, "lines on the new tail")
      again.abort()
      await second.done
    } finally {
      abort.abort()
    }
  }, 90_000)
})
