/**
 * logtrain as a process with KUBERNETES_DATASOURCE=true against the fake API server: annotations
 * route logs live, with no restart.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import * as FakeKubeApi from "../helpers/FakeKubeApi.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogReceiver from "../helpers/SyslogReceiver.ts"

const DRAINS = "logtrain.akkeris.io/drains"

const send = (port: number, lines: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const socket = Net.createConnection({ host: "127.0.0.1", port }, () => {
      socket.end(lines.map((line) => `${line}\n`).join(""), resolve)
    })
    socket.once("error", reject)
  })

const line = (hostname: string, text: string) => `<14>1 2024-01-01T00:00:00.000Z ${hostname} app - - - ${text}`

describe("logtrain with the Kubernetes datasource", () => {
  it("routes by the annotations of a deployment and of a pod, and follows a changed annotation live", async () => {
    const [http, tcp, sinkA, sinkB] = await freePorts(4)
    const a = await SyslogReceiver.listen(sinkA!)
    const b = await SyslogReceiver.listen(sinkB!)
    const fake = await FakeKubeApi.listen({ bookmarkIntervalMs: 500 })
    fake.create("deployments", { name: "web", namespace: "shop", annotations: { [DRAINS]: `syslog+tcp://127.0.0.1:${sinkA}` } })
    fake.create("pods", { name: "debug", namespace: "shop", nodeName: "node-1", annotations: { [DRAINS]: `syslog+tcp://127.0.0.1:${sinkB}` } })
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      KUBERNETES_DATASOURCE: "true",
      NODE_NAME: "node-1"
    }, ["--kube-config", fake.kubeconfig])
    try {
      await LogtrainProcess.ready(lt)
      while (!lt.stderr().includes("logtrain started")) await new Promise((r) => setTimeout(r, 20))
      assert.include(lt.stderr(), "routes=kubernetes")
      await send(tcp!, [line("web.shop", "one"), line("debug.shop", "two"), line("other.shop", "dead")])
      await a.waitFor(1)
      await b.waitFor(1)

      // Both URLs now, `;`-separated: the route to A stays, one to B is added.
      fake.annotate("deployments", "shop", "web", { [DRAINS]: `syslog+tcp://127.0.0.1:${sinkA};syslog+tcp://127.0.0.1:${sinkB}` })
      const deadline = Date.now() + 10_000
      let sent = 0
      while (b.packets().filter((p) => p.hostname === "web.shop").length === 0) {
        if (Date.now() > deadline) assert.fail(`the changed annotation was not followed:\n${lt.stderr()}`)
        await send(tcp!, [line("web.shop", `probe ${sent++}`)])
        await new Promise((r) => setTimeout(r, 100))
      }
      await a.waitFor(1 + sent)
      assert.deepStrictEqual(a.packets().map((p) => p.message), ["one", ...Array.from({ length: sent }, (_, i) => `probe ${i}`)])
      assert.deepStrictEqual(b.packets().filter((p) => p.hostname === "debug.shop").map((p) => p.message), ["two"])
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await fake.stop()
      await a.stop()
      await b.stop()
    }
  }, 60_000)
})
