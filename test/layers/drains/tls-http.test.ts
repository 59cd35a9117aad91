import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { caOption, certificates } from "../../helpers/certs.ts"
import * as DrainsHarness from "../../helpers/DrainsHarness.ts"
import * as HttpReceiver from "../../helpers/HttpReceiver.ts"
import { freePort } from "../../helpers/ports.ts"
import * as SyslogReceiver from "../../helpers/SyslogReceiver.ts"

const packet = (i: number) => LogPacket.make({ time: new Date(0), hostname: "host", tag: "app", message: `m${i}` })
const within = Duration.seconds(5)
/** For drains that can never deliver: closing should not wait long for them. */
const giveUpFast = { ...DrainsHarness.testSettings, flushTimeout: Duration.millis(100) }

const tlsReceiver = Effect.acquireRelease(
  Effect.promise(async () => {
    const certs = certificates()
    return SyslogReceiver.listen(await freePort(), { tls: { cert: certs.serverCert, key: certs.serverKey } })
  }),
  (receiver) => Effect.promise(() => receiver.stop())
)

const httpsReceiver = Effect.acquireRelease(
  Effect.promise(() => {
    const certs = certificates()
    return HttpReceiver.listen({ tls: { cert: certs.serverCert, key: certs.serverKey } })
  }),
  (receiver) => Effect.promise(() => receiver.stop())
)

describe("syslog+tls drain", () => {
  it.live("refuses a server its CA did not sign, saying so, and delivers nothing", () =>
    Effect.gen(function*() {
      const receiver = yield* tlsReceiver
      const { close, drains, logs } = yield* DrainsHarness.open(giveUpFast)
      const drain = yield* drains.open(`syslog+tls://localhost:${receiver.port}?ca=${caOption(certificates().otherCa)}`)
      drain.offer(packet(0))
      yield* DrainsHarness.waitUntil(() => drain.stats.errors >= 2, within, () => "failed attempts")
      assert.strictEqual(receiver.lines.length, 0)
      assert.isFalse(drain.stats.healthy)
      const warning = logs.find((line) => line.includes("drain failing"))
      assert.isDefined(warning)
      assert.match(warning!, /TLS handshake failed: .*(certificate|self-signed|issuer)/i)
      yield* close
    }))

  it.live("trusts the system roots plus the URL's CA, and skips verification with insecure=true", () =>
    Effect.gen(function*() {
      const receiver = yield* tlsReceiver
      const { close, drains } = yield* DrainsHarness.open()
      const trusted = yield* drains.open(`syslog+tls://localhost:${receiver.port}?ca=${caOption(certificates().ca)}`)
      trusted.offer(packet(1))
      const insecure = yield* drains.open(`syslog+tls://127.0.0.1:${receiver.port}?insecure=true`)
      insecure.offer(packet(2))
      yield* DrainsHarness.waitUntil(() => receiver.lines.length >= 2, within, () => `${receiver.lines.length}/2`)
      // RFC 5425: octet-counted by default; the receiver's decoder saw two whole frames.
      assert.deepStrictEqual(receiver.packets().map((p) => p.message).toSorted(), ["m1", "m2"])
      yield* close
    }))
})

describe("http drains", () => {
  it.live("turn user info into Basic auth and keep it out of the URL; each format has its content type", () =>
    Effect.gen(function*() {
      const receiver = yield* Effect.acquireRelease(Effect.promise(() => HttpReceiver.listen()), (r) => Effect.promise(() => r.stop()))
      const { close, drains } = yield* DrainsHarness.open()
      for (const format of ["array", "ndjson", "single"]) {
        const drain = yield* drains.open(`http://user:p%40ss@127.0.0.1:${receiver.port}/in/${format}?format=${format}&x=1`)
        drain.offer(packet(0))
      }
      yield* DrainsHarness.waitUntil(() => receiver.requests.length >= 3, within, () => `${receiver.requests.length}/3`)
      const byPath = new Map(receiver.requests.map((r) => [r.path, r]))
      assert.deepStrictEqual([...byPath.keys()].toSorted(), ["/in/array?x=1", "/in/ndjson?x=1", "/in/single?x=1"])
      for (const request of receiver.requests) {
        assert.strictEqual(request.headers.authorization, `Basic ${Buffer.from("user:p@ss").toString("base64")}`)
      }
      assert.strictEqual(byPath.get("/in/array?x=1")!.headers["content-type"], "application/json")
      assert.strictEqual(byPath.get("/in/ndjson?x=1")!.headers["content-type"], "application/x-ndjson")
      assert.deepStrictEqual(JSON.parse(byPath.get("/in/single?x=1")!.body), {
        severity: 6,
        facility: 1,
        hostname: "host",
        tag: "app",
        time: "1970-01-01T00:00:00.000Z",
        message: "m0"
      })
      yield* close
    }))

  it.live("an https drain refuses an untrusted certificate unless insecure=true", () =>
    Effect.gen(function*() {
      const receiver = yield* httpsReceiver
      const { close, drains } = yield* DrainsHarness.open(giveUpFast)
      const strict = yield* drains.open(`https://localhost:${receiver.port}/strict`)
      strict.offer(packet(0))
      yield* DrainsHarness.waitUntil(() => strict.stats.errors >= 1, within, () => "a refused attempt")
      assert.strictEqual(receiver.requests.length, 0)
      const insecure = yield* drains.open(`https://localhost:${receiver.port}/insecure?insecure=true`)
      insecure.offer(packet(1))
      yield* DrainsHarness.waitUntil(() => receiver.requests.length >= 1, within, () => "delivery")
      assert.deepStrictEqual(receiver.requests.map((r) => r.path), ["/insecure"])
      yield* close
    }))

  it.live("an https drain trusts the system roots plus the URL's CA, and no other", () =>
    Effect.gen(function*() {
      const certs = certificates()
      const receiver = yield* httpsReceiver
      const { close, drains } = yield* DrainsHarness.open(giveUpFast)
      const other = yield* drains.open(`https://localhost:${receiver.port}/other?ca=${caOption(certs.otherCa)}`)
      other.offer(packet(0))
      yield* DrainsHarness.waitUntil(() => other.stats.errors >= 1, within, () => "a refused attempt")
      const trusted = yield* drains.open(`https://localhost:${receiver.port}/trusted?ca=${caOption(certs.ca)}&x=1`)
      trusted.offer(packet(1))
      yield* DrainsHarness.waitUntil(() => receiver.requests.length >= 1, within, () => "delivery")
      assert.deepStrictEqual(receiver.requests.map((r) => r.path), ["/trusted?x=1"])
      assert.deepStrictEqual(JSON.parse(receiver.requests[0]!.body).map((p: { message: string }) => p.message), ["m1"])
      yield* close
    }))
})

describe("syslog+http drain", () => {
  it.live("sends logplex frames whose Frame-Id stays the same when a batch is retried", () =>
    Effect.gen(function*() {
      const receiver = yield* Effect.acquireRelease(Effect.promise(() => HttpReceiver.listen()), (r) => Effect.promise(() => r.stop()))
      const { close, drains } = yield* DrainsHarness.open()
      receiver.status = 503
      const drain = yield* drains.open(`syslog+http://127.0.0.1:${receiver.port}/logs?framing=octet-counting`)
      for (let i = 0; i < 3; i++) drain.offer(packet(i))
      yield* DrainsHarness.waitUntil(() => drain.stats.retries >= 2, within, () => "retries")
      receiver.status = 200
      yield* DrainsHarness.waitUntil(() => receiver.requests.length >= 1, within, () => "delivery")
      const [request] = receiver.requests
      assert.strictEqual(request!.headers["content-type"], "application/logplex-1")
      assert.strictEqual(request!.headers["logplex-msg-count"], "3")
      assert.match(String(request!.headers["logplex-frame-id"]), /^[0-9a-f-]{36}$/)
      const ids = new Set(receiver.attempts.map((a) => a.headers["logplex-frame-id"]))
      assert.isAtLeast(receiver.attempts.filter((a) => a.status === 503).length, 2)
      assert.strictEqual(ids.size, 1, "every attempt of the batch carried the same frame id")
      drain.offer(packet(3))
      yield* DrainsHarness.waitUntil(() => receiver.requests.length >= 2, within, () => "second batch")
      assert.notStrictEqual(receiver.requests[1]!.headers["logplex-frame-id"], request!.headers["logplex-frame-id"])
      yield* close
    }))
})
