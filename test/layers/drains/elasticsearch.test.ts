import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Bulk from "../../../src/domain/ElasticsearchBulk.ts"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { certificates } from "../../helpers/certs.ts"
import * as DrainsHarness from "../../helpers/DrainsHarness.ts"
import * as FakeElasticsearch from "../../helpers/FakeElasticsearch.ts"
import { runDrainCompliance } from "./compliance.ts"

const within = Duration.seconds(5)
const packet = (message: string, hostname = "api.default") =>
  LogPacket.make({ time: new Date("2024-01-02T03:04:05.678Z"), hostname, tag: "web", message, severity: 3, facility: 16 })

const fake = Effect.acquireRelease(Effect.promise(() => FakeElasticsearch.listen()), (es) => Effect.promise(() => es.stop()))
const b64 = (s: string) => Buffer.from(s).toString("base64")

describe("the _bulk stand-in is strict", () => {
  it.live("refuses the original's action line (a _source key) for the whole request, as Elasticsearch does", () =>
    Effect.gen(function*() {
      const es = yield* fake
      const original = `{"create":{"_source":"logtrain","_id":"1","_index":"app"}}\n{"message":"x"}\n`
      const reply = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${es.port}/_bulk`, { method: "POST", body: original, headers: { "content-type": "application/json" } })
          .then(async (r) => ({ status: r.status, body: await r.text() }))
      )
      assert.strictEqual(reply.status, 400)
      assert.include(reply.body, "contains an unknown parameter [_source]")
      const unterminated = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${es.port}/_bulk`, { method: "POST", body: `{"create":{"_index":"a"}}\n{}`, headers: { "content-type": "application/x-ndjson" } })
          .then((r) => r.status)
      )
      assert.strictEqual(unterminated, 400)
      assert.strictEqual(es.all().length, 0)
    }))
})

describe("Elasticsearch drain", () => {
  it.live("sends exactly the Authorization header of each auth mode", () =>
    Effect.gen(function*() {
      const es = yield* fake
      const { close, drains } = yield* DrainsHarness.open()
      const modes: ReadonlyArray<readonly [string, string | undefined]> = [
        [`es+http://elastic:s3cret@127.0.0.1:${es.port}?index=basic`, `Basic ${b64("elastic:s3cret")}`],
        [`es+http://ignored:tok3n@127.0.0.1:${es.port}?auth=bearer&index=bearer`, "Bearer tok3n"],
        [`es+http://key-id:k3y@127.0.0.1:${es.port}?auth=apikey&index=apikey`, `ApiKey ${b64("key-id:k3y")}`],
        [`elasticsearch+http://127.0.0.1:${es.port}?index=none`, undefined]
      ]
      for (const [url] of modes) (yield* drains.open(url)).offer(packet("hello"))
      yield* DrainsHarness.waitUntil(() => es.requests.length >= 4, within, () => `${es.requests.length} requests`)
      for (const [url, header] of modes) {
        const index = new URL(url.replace(/^[a-z+]+:/, "http:")).searchParams.get("index")!
        const request = es.requests.find((r) => r.body.includes(`"_index":"${index}"`))
        assert.isDefined(request, index)
        assert.strictEqual(request!.headers.authorization, header, index)
        assert.strictEqual(request!.headers["content-type"], "application/x-ndjson")
      }
      yield* close
    }))

  it.live("indexes documents with the original's fields, in the hostname's index unless index= says otherwise", () =>
    Effect.gen(function*() {
      const es = yield* fake
      const { close, drains } = yield* DrainsHarness.open()
      const byHost = yield* drains.open(`es+http://127.0.0.1:${es.port}`)
      byHost.offer(packet("one", "API.Default"))
      const named = yield* drains.open(`es+http://127.0.0.1:${es.port}/prefix?index=logs`)
      named.offer(packet("two"))
      yield* DrainsHarness.waitUntil(() => es.all().length >= 2, within, () => `${es.all().length}/2`)
      assert.deepStrictEqual(es.indexed.get("api.default")!.map((d) => d.source), [{
        "@timestamp": "2024-01-02T03:04:05.678Z",
        hostname: "API.Default",
        tag: "web",
        message: "one",
        severity: 3,
        facility: 16
      }])
      assert.deepStrictEqual(es.indexed.get("logs")!.map((d) => d.source.message), ["two"])
      assert.isTrue(es.requests.some((r) => r.path === "/prefix/_bulk"))
      yield* close
    }))

  it.live("with mixed item answers: counts successes once, sends 429 items again until delivered, drops 400 items with their reason", () =>
    Effect.gen(function*() {
      const es = yield* fake
      es.itemStatus = (doc, attempt) => {
        const message = String(doc.source.message)
        if (message.startsWith("busy") && attempt <= 2) return 429
        if (message.startsWith("bad")) return 400
        return undefined
      }
      const { close, drains } = yield* DrainsHarness.open()
      const drain = yield* drains.open(`es+http://127.0.0.1:${es.port}?index=mixed`)
      const messages = ["ok-1", "busy-1", "bad-1", "ok-2", "busy-2", "bad-2", "ok-3"]
      for (const m of messages) drain.offer(packet(m))
      yield* DrainsHarness.waitUntil(
        () => drain.stats.sent + drain.stats.dropped.rejected >= messages.length,
        within,
        () => JSON.stringify(drain.stats)
      )
      assert.deepStrictEqual(es.all().map((d) => d.source.message).toSorted(), ["busy-1", "busy-2", "ok-1", "ok-2", "ok-3"])
      assert.strictEqual(drain.stats.sent, 5)
      assert.strictEqual(drain.stats.dropped.rejected, 2)
      assert.isAtLeast(drain.stats.retries, 2)
      // Only the busy items were sent again: the second and third requests hold just those two.
      const bodies = es.requests.map((r) => r.body.split("\n").filter((l) => l.includes('"message"')).map((l) => JSON.parse(l).message))
      assert.deepStrictEqual(bodies[0], messages)
      for (const later of bodies.slice(1)) assert.deepStrictEqual(later, ["busy-1", "busy-2"])
      const metrics = yield* PrometheusMetrics.format()
      assert.match(metrics, /logtrain_drain_rejected_total\{[^}]*reason="mapper_parsing_exception"[^}]*\} 2/)
      yield* close
    }))

  it.live("retries a request that failed as a whole, and never indexes a document twice when an answer was lost", () =>
    Effect.gen(function*() {
      const es = yield* fake
      const { close, drains } = yield* DrainsHarness.open()
      const drain = yield* drains.open(`es+http://127.0.0.1:${es.port}?index=whole`)
      es.failRequests(2, 503)
      for (let i = 0; i < 5; i++) drain.offer(packet(`a${i}`))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent >= 5, within, () => JSON.stringify(drain.stats))
      es.loseAnswers(1)
      for (let i = 0; i < 5; i++) drain.offer(packet(`b${i}`))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent >= 10, within, () => JSON.stringify(drain.stats))
      const messages = es.all().map((d) => String(d.source.message))
      assert.strictEqual(messages.length, 10, messages.join(","))
      assert.strictEqual(new Set(messages).size, 10)
      assert.deepStrictEqual([drain.stats.sent, drain.stats.dropped.rejected], [10, 0])
      assert.isAtLeast(drain.stats.retries, 3)
      yield* close
    }))

  it.live("drops a batch refused as a whole (401: bad credentials), with the reason, and says so in its log", () =>
    Effect.gen(function*() {
      const es = yield* fake
      es.expectAuthorization = `Basic ${b64("elastic:right")}`
      const { close, drains, logs } = yield* DrainsHarness.open()
      const drain = yield* drains.open(`es+http://elastic:wrong@127.0.0.1:${es.port}?index=auth`)
      drain.offer(packet("x"))
      yield* DrainsHarness.waitUntil(() => drain.stats.dropped.rejected === 1, within, () => JSON.stringify(drain.stats))
      assert.strictEqual(drain.stats.retries, 0)
      const warning = logs.find((l) => l.includes("drain refused a batch"))
      assert.include(warning, "security_exception")
      assert.notInclude(logs.join("\n"), "wrong")
      yield* close
    }))
})

/** A drain harness that sends batches of up to `size` documents, each in one request. */
const batchesOf = (size: number) =>
  DrainsHarness.open({
    ...DrainsHarness.testSettings,
    batchSize: size,
    batchBytes: 64 * 1024 * 1024,
    bufferSize: Math.max(10_000, 2 * size),
    // One worker: the batch of `size` is one request, the test can tell requests apart.
    maxWorkers: 1
  })

const messagesOf = (request: FakeElasticsearch.Request) =>
  request.body.split("\n").filter((l) => l.includes('"message"')).map((l) => String(JSON.parse(l).message))

/** The number in a document's message `m-<n>`. */
const n = (doc: FakeElasticsearch.Doc) => Number(String(doc.source.message).slice(2))

const idsOf = (request: FakeElasticsearch.Request) =>
  request.body.split("\n").filter((l) => l.startsWith('{"create"')).map((l) => String(JSON.parse(l).create._id))

describe("Elasticsearch drain at real sizes", () => {
  for (const size of [1, 40, 1000, 5000]) {
    it.live(`indexes a batch of ${size} in one request, reading the whole answer (one item per document)`, () =>
      Effect.gen(function*() {
        const es = yield* fake
        const { close, drains } = yield* batchesOf(size)
        const drain = yield* drains.open(`es+http://127.0.0.1:${es.port}?index=sized`)
        for (let i = 0; i < size; i++) drain.offer(packet(`m-${i}`))
        yield* DrainsHarness.waitUntil(() => drain.stats.sent >= size, Duration.seconds(15), () => JSON.stringify(drain.stats))
        assert.strictEqual(es.requests.length, 1)
        const answer = es.requests[0]!
        // Past 4 KiB from 40 documents on: the size the old drain cut, and then resent for ever.
        if (size >= 40) assert.isAbove(answer.answerBytes, 4096)
        assert.strictEqual(es.count(), size)
        assert.strictEqual(new Set(es.all().map((d) => d.id)).size, size)
        assert.deepStrictEqual([drain.stats.sent, drain.stats.retries, drain.stats.errors], [size, 0, 0])
        yield* close
      }), 30_000)
  }

  it.live("with a 1000-document answer of mixed 201/409/429/400: sends exactly the 429s again, counts 409 as delivered, drops the 400s by type, indexes nothing twice", () =>
    Effect.gen(function*() {
      const es = yield* fake
      es.itemStatus = (doc, attempt) => {
        const i = n(doc)
        if (i % 10 === 3) return 400 // a mapping error, every time
        if (i % 10 === 5 && attempt <= 2) return 429 // busy on the first two attempts
        if (i % 10 === 7 && attempt === 1) return 429 // busy on the first only
        return undefined
      }
      // The first request is indexed but its answer is lost: the second repeats the whole batch, so
      // its answer has 409 (indexed by the first), 201 (busy the first time), 429 and 400 items.
      es.loseAnswers(1)
      const { close, drains } = yield* batchesOf(1000)
      const drain = yield* drains.open(`es+http://127.0.0.1:${es.port}?index=mixed`)
      for (let i = 0; i < 1000; i++) drain.offer(packet(`m-${i}`))
      yield* DrainsHarness.waitUntil(
        () => drain.stats.sent + drain.stats.dropped.rejected >= 1000,
        Duration.seconds(15),
        () => JSON.stringify(drain.stats)
      )
      assert.strictEqual(es.requests.length, 3)
      const [first, second, third] = es.requests as [FakeElasticsearch.Request, FakeElasticsearch.Request, FakeElasticsearch.Request]
      assert.strictEqual(first.status, 503, "the first answer was lost")
      assert.deepStrictEqual(idsOf(second), idsOf(first), "the second repeats the batch, same ids")
      const answer = JSON.parse(second.answer) as { errors: boolean; took: number; items: Array<{ create: { _id: string; status: number } }> }
      assert.isTrue(answer.errors)
      assert.strictEqual(answer.items.length, 1000)
      const statuses = new Map<number, number>()
      for (const item of answer.items) statuses.set(item.create.status, (statuses.get(item.create.status) ?? 0) + 1)
      assert.deepStrictEqual(Object.fromEntries(statuses), { 409: 700, 201: 100, 429: 100, 400: 100 })
      // Exactly the 429s of the second answer went again, and nothing else.
      const busy = answer.items.filter((item) => item.create.status === 429).map((item) => item.create._id)
      assert.deepStrictEqual(idsOf(third), busy)
      assert.deepStrictEqual(messagesOf(third), Array.from({ length: 100 }, (_, k) => `m-${k * 10 + 5}`))
      assert.strictEqual(third.status, 200)
      // 900 delivered once each; the 100 mapping errors dropped and counted by their type.
      assert.strictEqual(es.count(), 900)
      const indexed = es.all().map((d) => n(d)).toSorted((a, b) => a - b)
      assert.deepStrictEqual(indexed, Array.from({ length: 1000 }, (_, i) => i).filter((i) => i % 10 !== 3))
      assert.deepStrictEqual([drain.stats.sent, drain.stats.dropped.rejected], [900, 100])
      const metrics = yield* PrometheusMetrics.format()
      assert.match(metrics, /logtrain_drain_rejected_total\{[^}]*drain="es\+http:\/\/127\.0\.0\.1:\d+\?index=mixed"[^}]*reason="mapper_parsing_exception"[^}]*\} 100/)
      yield* close
    }), 30_000)

  it.live("sends again only the items answered 500 or 503, and delivers each of them once", () =>
    Effect.gen(function*() {
      const es = yield* fake
      es.itemStatus = (doc, attempt) => {
        const i = n(doc)
        if (attempt > 1) return undefined
        return i % 100 === 11 ? 503 : i % 100 === 22 ? 500 : undefined
      }
      const { close, drains, logs } = yield* batchesOf(1000)
      const drain = yield* drains.open(`es+http://127.0.0.1:${es.port}?index=fivexx`)
      for (let i = 0; i < 1000; i++) drain.offer(packet(`m-${i}`))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent >= 1000, Duration.seconds(15), () => JSON.stringify(drain.stats))
      assert.strictEqual(es.requests.length, 2)
      assert.deepStrictEqual(
        messagesOf(es.requests[1]!),
        Array.from({ length: 1000 }, (_, i) => i).filter((i) => i % 100 === 11 || i % 100 === 22).map((i) => `m-${i}`)
      )
      assert.strictEqual(es.count(), 1000)
      assert.strictEqual(new Set(es.all().map((d) => d.id)).size, 1000)
      assert.deepStrictEqual([drain.stats.sent, drain.stats.dropped.rejected, drain.stats.retries], [1000, 0, 1])
      assert.include(logs.find((l) => l.includes("drain failing")), "20 of 1000 items answered 503 (unavailable_shards_exception)")
      yield* close
    }), 30_000)

  it.live("refuses an answer longer than Elasticsearch can give, with a clear error, and does not send the batch again", () =>
    Effect.gen(function*() {
      const es = yield* fake
      // 200 KB of reason for one small document: no Elasticsearch says that much.
      es.itemStatus = () => ({ status: 400, type: "mapper_parsing_exception", reason: "x".repeat(200_000) })
      const { close, drains, logs } = yield* batchesOf(10)
      const drain = yield* drains.open(`es+http://127.0.0.1:${es.port}?index=huge`)
      drain.offer(packet("one"))
      yield* DrainsHarness.waitUntil(() => drain.stats.dropped.rejected >= 1, within, () => JSON.stringify(drain.stats))
      yield* Effect.sleep("300 millis")
      assert.strictEqual(es.requests.length, 1, "not sent again")
      assert.deepStrictEqual([drain.stats.sent, drain.stats.retries, drain.stats.dropped.rejected], [0, 0, 1])
      const warning = logs.find((l) => l.includes("drain refused a batch"))
      assert.include(warning, "answer for 1 document is longer than")
      assert.isBelow(warning!.length, 1500, "an excerpt, not the answer")
      const metrics = yield* PrometheusMetrics.format()
      assert.match(metrics, /logtrain_drain_rejected_total\{[^}]*index=huge[^}]*reason="answer_too_large"[^}]*\} 1/)
      yield* close
    }), 30_000)
})

describe("Elasticsearch over TLS", () => {
  it.live("verifies the server's certificate unless insecure=true", () =>
    Effect.gen(function*() {
      const certs = certificates()
      const es = yield* Effect.acquireRelease(
        Effect.promise(() => FakeElasticsearch.listen({ tls: { cert: certs.serverCert, key: certs.serverKey } })),
        (e) => Effect.promise(() => e.stop())
      )
      const { close, drains, logs } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, flushTimeout: Duration.millis(100) })
      const strict = yield* drains.open(`es+https://localhost:${es.port}?index=strict`)
      strict.offer(packet("refused"))
      yield* DrainsHarness.waitUntil(() => strict.stats.errors >= 1, within, () => "a refused attempt")
      const insecure = yield* drains.open(`es://localhost:${es.port}?index=insecure&insecure=true`)
      insecure.offer(packet("accepted"))
      yield* DrainsHarness.waitUntil(() => insecure.stats.sent >= 1, within, () => JSON.stringify(insecure.stats))
      assert.deepStrictEqual(es.all().map((d) => d.index), ["insecure"])
      assert.match(logs.find((l) => l.includes("drain failing")) ?? "", /certificate/i)
      yield* close
    }))
})

runDrainCompliance({
  kind: "es+http",
  guarantees: { resendsAfterOutage: true, rejects: true },
  receiver: (secret) =>
    Effect.map(fake, (es) => ({
      url: `es+http://elastic:${secret}@127.0.0.1:${es.port}/?index=compliance`,
      received: () => (es.indexed.get("compliance") ?? []).map((d) => String(d.source.message)),
      down: Effect.promise(() => es.stop()),
      up: Effect.promise(() => es.start()),
      reject: (on: boolean) =>
        Effect.sync(() => {
          es.itemStatus = on ? () => 400 : undefined
        })
    }))
})

describe("bulk answers", () => {
  it("reads each item's status, and a whole-request failure", () => {
    const body = JSON.stringify({
      errors: true,
      items: [
        { create: { status: 201 } },
        { create: { status: 409, error: { type: "version_conflict_engine_exception" } } },
        { create: { status: 429, error: { type: "es_rejected_execution_exception" } } },
        { create: { status: 400, error: { type: "mapper_parsing_exception", reason: "failed to parse" } } }
      ]
    })
    const outcome = Bulk.readResponse(200, body, 4)
    assert.deepStrictEqual(outcome._tag === "Items" && outcome.items.map((i) => i._tag), ["Delivered", "Delivered", "Retry", "Rejected"])
    assert.strictEqual(Bulk.readResponse(503, "{}", 4)._tag, "Retry")
    assert.strictEqual(Bulk.readResponse(401, '{"error":{"type":"security_exception","reason":"no"}}', 4)._tag, "Rejected")
    assert.strictEqual(Bulk.readResponse(200, '{"items":[]}', 4)._tag, "Retry")
  })

  it("takes an answer without errors at its word, when it has one item per document (8.x and 7.x order)", () => {
    const item = '{"create":{"_index":"a","_id":"x","_version":1,"result":"created","status":201}}'
    for (const start of ['{"errors":false,"took":3,', '{"took":3,"errors":false,', '{ "took" : 3 , "errors" : false , ']) {
      const body = `${start}"items":[${[item, item, item].join(",")}]}`
      const outcome = Bulk.readResponse(200, body, 3)
      assert.deepStrictEqual(outcome._tag === "Items" && outcome.items.map((i) => i._tag), ["Delivered", "Delivered", "Delivered"], start)
      // One item short: not trusted, read in full, and found wanting.
      assert.strictEqual(Bulk.readResponse(200, body, 4)._tag, "Retry")
    }
  })
})
