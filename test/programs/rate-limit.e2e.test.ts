/**
 * Per-app rate limits, end to end: logtrain as a process, workloads in the fake Kubernetes API,
 * real container log files written at a known pace. An app annotated with a rate limit and
 * flooding at ten times it gets its limit (± 5 %), an app beside it with none gets every line,
 * and what was dropped is counted and named at /debug/rate-limits.
 */
import { assert, describe, it } from "@effect/vitest"
import { appendFileSync } from "node:fs"
import * as FakeKubeApi from "../helpers/FakeKubeApi.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import * as NodeLayout from "../helpers/NodeLayout.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogReceiver from "../helpers/SyslogReceiver.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const metric = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1))
}

/** A deployment, its replicaset and a pod of it on node-1, as the API has them. */
const workload = (fake: FakeKubeApi.FakeKubeApi, name: string, annotations: Record<string, string>) => {
  fake.create("deployments", { name, namespace: "shop", annotations })
  fake.create("replicasets", { name: `${name}-5d8f7c`, namespace: "shop", owner: { kind: "Deployment", name } })
  fake.create("pods", { name: `${name}-5d8f7c-x2x9q`, namespace: "shop", nodeName: "node-1", owner: { kind: "ReplicaSet", name: `${name}-5d8f7c` } })
}

describe("logtrain.akkeris.io/rate-limit", () => {
  it("an app flooding at 10x its limit gets its limit ± 5 %; the app beside it gets every line; the drops are counted", async () => {
    const RATE = 100
    const BURST = 100
    const PER_SECOND = 10 * RATE
    const SECONDS = 8
    const dirs = NodeLayout.make()
    const [http, sink] = await freePorts(2)
    const receiver = await SyslogReceiver.listen(sink!)
    const fake = await FakeKubeApi.listen()
    const drain = `syslog+tcp://127.0.0.1:${sink}`
    workload(fake, "noisy", { "logtrain.akkeris.io/drains": drain, "logtrain.akkeris.io/rate-limit": `${RATE}/s,burst=${BURST}` })
    workload(fake, "calm", { "logtrain.akkeris.io/drains": drain })
    const noisy = dirs.container("noisy-5d8f7c-x2x9q", "shop")
    const calm = dirs.container("calm-5d8f7c-x2x9q", "shop")
    const lt = LogtrainProcess.start({
      ...dirs.env(http!),
      KUBERNETES_DATASOURCE: "true",
      NODE_NAME: "node-1"
    }, ["--kube-config", fake.kubeconfig])
    try {
      await LogtrainProcess.ready(lt)
      // Both apps write the same flood, 1/20 s at a time; the bucket refills with the time that
      // passes between the first and the last write.
      const step = PER_SECOND / 20
      const total = PER_SECOND * SECONDS
      const first = Date.now()
      let last = first
      for (let n = 0; n < total; n += step) {
        const due = first + (n / PER_SECOND) * 1000
        if (due > Date.now()) await sleep(due - Date.now())
        const lines = Array.from({ length: step }, (_, i) => NodeLayout.criLine(n + i)).join("")
        appendFileSync(noisy.file, lines)
        appendFileSync(calm.file, lines)
        last = Date.now()
      }
      const elapsed = (last - first) / 1000
      await receiver.waitFor(total, 20_000)
      await sleep(1000)
      const packets = receiver.packets()
      const got = (hostname: string) => packets.filter((p) => p.hostname === hostname).map((p) => p.message)
      const calmGot = got("calm.shop")
      const noisyGot = got("noisy.shop")
      assert.deepStrictEqual(calmGot, NodeLayout.lines(0, total), "the app with no limit lost nothing")
      const expected = BURST + RATE * elapsed
      assert.approximately(noisyGot.length, expected, expected * 0.05, `${noisyGot.length} lines in ${elapsed} s, expected ${expected}`)
      // What passed is in order.
      const numbers = noisyGot.map((m) => Number(m.slice(5)))
      assert.isTrue(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!), "in order")

      const text = await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text())
      assert.strictEqual(metric(text, 'logtrain_rate_limited_total{input="kubernetes",reason="rate_limit"}'), total - noisyGot.length)
      assert.strictEqual(metric(text, 'logtrain_rate_limited_total{input="network",reason="rate_limit"}'), 0)
      assert.strictEqual(metric(text, "logtrain_rate_limits"), 1)
      const debug = await fetch(`http://127.0.0.1:${http}/debug/rate-limits`).then((r) => r.json()) as {
        apps: Array<{ hostname: string; limit: string; passed: number; dropped: number }>
      }
      assert.deepStrictEqual(debug.apps.map(({ dropped, hostname, limit, passed }) => ({ hostname, limit, passed, dropped })), [
        { hostname: "noisy.shop", limit: `${RATE}/s,burst=${BURST}`, passed: noisyGot.length, dropped: total - noisyGot.length }
      ])
      assert.match(lt.stderr(), /app over its rate limit: lines dropped.*hostname=noisy\.shop/)

      // The limit follows the annotation: removed, the app's lines all pass again.
      fake.annotate("deployments", "shop", "noisy", { "logtrain.akkeris.io/rate-limit": null })
      await sleep(500)
      const before = receiver.lines.length
      appendFileSync(noisy.file, Array.from({ length: 1000 }, (_, i) => NodeLayout.criLine(total + i)).join(""))
      await receiver.waitFor(before + 1000, 10_000)
      assert.deepStrictEqual(receiver.packets().filter((p) => p.hostname === "noisy.shop").slice(-1000).map((p) => p.message), NodeLayout.lines(total, 1000))
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await fake.stop()
      await receiver.stop()
      dirs.remove()
    }
  }, 90_000)
})
