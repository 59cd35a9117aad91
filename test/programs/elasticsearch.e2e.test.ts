/**
 * logtrain as a process, configured as a new user would: `es+http://` routes in ROUTES, lines in
 * over TCP syslog, into the Elasticsearch stand-in answering as Elasticsearch 8 does.
 * `LOGTRAIN_BUNDLE=dist/bundle/logtrain.js` runs it against the bundle (after `npm run build`).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import * as FakeElasticsearch from "../helpers/FakeElasticsearch.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const b64 = (s: string) => Buffer.from(s).toString("base64")

/** The three routes of the issue: one per auth mode, each its own app and index. */
const routes = (port: number) => ({
  "app-basic": [`es+http://elastic:b4sic-pw@127.0.0.1:${port}?index=basic`],
  "app-apikey": [`es+http://key-id:k3y-secret@127.0.0.1:${port}?auth=apikey&index=apikey`],
  "app-bearer": [`es+http://ignored:t0ken-value@127.0.0.1:${port}?auth=bearer&index=bearer`]
})
const authorizations: Record<string, string> = {
  basic: `Basic ${b64("elastic:b4sic-pw")}`,
  apikey: `ApiKey ${b64("key-id:k3y-secret")}`,
  bearer: "Bearer t0ken-value"
}
const apps = ["app-basic", "app-apikey", "app-bearer"] as const
const indexOf = (app: string) => app.slice(4)

const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`
const line = (i: number) => `<14>1 2024-01-01T00:00:00.000Z ${apps[i % 3]} web - - - line ${i}`

/** Sends lines 0..n-1 over one TCP connection, in blocks, minding backpressure. */
const send = async (port: number, n: number) => {
  const socket = await new Promise<Net.Socket>((resolve, reject) => {
    const s = Net.createConnection({ host: "127.0.0.1", port }, () => resolve(s))
    s.once("error", reject)
  })
  for (let from = 0; from < n; from += 5000) {
    let chunk = ""
    for (let i = from; i < Math.min(n, from + 5000); i++) chunk += octet(line(i))
    if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r))
  }
  await new Promise<void>((resolve) => socket.end(() => resolve()))
}

/** Starts the stand-in and logtrain with the three routes; the stand-in answers a 429 for every other item of each index's first request. */
const start = async (options: { readonly keep: boolean }) => {
  const es = await FakeElasticsearch.listen({ keep: options.keep })
  const firstRequest = new Map<string, number>()
  es.itemStatus = (doc, _attempt, at) => {
    if (!firstRequest.has(doc.index)) firstRequest.set(doc.index, at.request)
    return firstRequest.get(doc.index) === at.request && at.position % 2 === 1 ? 429 : undefined
  }
  const [http, tcp] = await freePorts(2)
  const lt = LogtrainProcess.start({
    HTTP_PORT: String(http),
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(tcp),
    DRAIN_WHEN_FULL: "block",
    DRAIN_RETRY_MAX_DELAY: "1s",
    DRAIN_FLUSH_TIMEOUT: "2s",
    ROUTES: JSON.stringify(routes(es.port))
  })
  await LogtrainProcess.ready(lt)
  return { es, lt, tcp: tcp! }
}

/** Waits until the stand-in holds `n` documents and then some more time, to see that no more come. */
const settle = async (es: FakeElasticsearch.FakeElasticsearch, n: number, within: number) => {
  const deadline = Date.now() + within
  while (es.count() < n && Date.now() < deadline) await sleep(50)
  await sleep(2000)
}

describe("logtrain into Elasticsearch, end to end", () => {
  it("70 lines into three es+http routes (basic, apikey, bearer), a per-item 429 on each first request: exactly 70 documents, once each, with the right credentials", async () => {
    const { es, lt, tcp } = await start({ keep: true })
    try {
      await send(tcp, 70)
      await settle(es, 70, 15_000)
      const docs = es.all()
      assert.strictEqual(docs.length, 70, `${docs.length} documents`)
      assert.strictEqual(new Set(docs.map((d) => `${d.index}/${d.id}`)).size, 70)
      assert.deepStrictEqual(
        docs.map((d) => String(d.source.message)).toSorted(),
        Array.from({ length: 70 }, (_, i) => `line ${i}`).toSorted()
      )
      for (const app of apps) {
        const index = indexOf(app)
        const expected = Array.from({ length: 70 }, (_, i) => i).filter((i) => i % 3 === apps.indexOf(app)).map((i) => `line ${i}`)
        assert.deepStrictEqual(es.indexed.get(index)!.map((d) => String(d.source.message)).toSorted(), expected.toSorted(), index)
        const requests = es.requests.filter((r) => r.body.includes(`"_index":"${index}"`))
        // The first answer had 429s: a second request sent those, and nothing more was needed.
        assert.strictEqual(requests.length, 2, `${index}: ${requests.length} requests`)
        for (const r of requests) assert.strictEqual(r.headers.authorization, authorizations[index], index)
      }
      const metrics = await fetch(`http://127.0.0.1:${lt.httpPort}/metrics`).then((r) => r.text())
      assert.notMatch(metrics, /b4sic-pw|k3y-secret|t0ken-value/)
      assert.notMatch(lt.stderr(), /b4sic-pw|k3y-secret|t0ken-value/)
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await es.stop()
    }
  }, 60_000)

  it("100,000 lines give exactly 100,000 documents", async () => {
    const { es, lt, tcp } = await start({ keep: false })
    try {
      const started = Date.now()
      await send(tcp, 100_000)
      await settle(es, 100_000, 40_000)
      const seconds = (Date.now() - started) / 1000 - 2
      assert.strictEqual(es.count(), 100_000)
      assert.strictEqual(es.all().length, 100_000)
      for (const app of apps) {
        assert.strictEqual(es.indexed.get(indexOf(app))!.length, Math.ceil((100_000 - apps.indexOf(app)) / 3), app)
      }
      // Every request answered whole, none of them retried but the first of each index (its 429s).
      const retried = es.requests.filter((r) => r.status !== 200).length
      assert.strictEqual(retried, 0)
      console.log(`100,000 lines into 3 es+http drains: ${es.requests.length} _bulk requests, ${seconds.toFixed(1)} s`)
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await es.stop()
    }
  }, 90_000)
})
