/**
 * logtrain as a process with KUBERNETES=true: container log files written by a separate writer
 * process, delivered to a syslog receiver — across a restart, and named from the Kubernetes API.
 */
import { assert, describe, it } from "@effect/vitest"
import * as FakeKubeApi from "../helpers/FakeKubeApi.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import * as NodeLayout from "../helpers/NodeLayout.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogReceiver from "../helpers/SyslogReceiver.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("logtrain with the container log input", () => {
  it("delivers every line once across a restart (SIGTERM while the writer goes on), naming logs from file names without an API", async () => {
    const dirs = NodeLayout.make()
    const [http, sink] = await freePorts(2)
    const receiver = await SyslogReceiver.listen(sink!)
    const { file } = dirs.container("web-5d8f7c-x2x9q", "shop")
    const env = {
      ...dirs.env(http!),
      HOME: dirs.root,
      ROUTES: JSON.stringify({ "web.shop": [`syslog+tcp://127.0.0.1:${sink}`] })
    }
    let lt = LogtrainProcess.start(env)
    try {
      await LogtrainProcess.ready(lt)
      assert.include(lt.stderr(), "container logs are named from their file names")
      const writing = NodeLayout.write(file, "docker", 0, 20_000, 10_000)
      await receiver.waitFor(3000, 10_000)
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      const atStop = receiver.lines.length
      await sleep(300)
      lt = LogtrainProcess.start(env)
      await LogtrainProcess.ready(lt)
      await writing
      await receiver.waitFor(20_000, 20_000)
      await sleep(500)
      const packets = receiver.packets()
      assert.isBelow(atStop, 20_000, "stopped mid-stream")
      assert.deepStrictEqual(packets.map((p) => p.message), Array.from({ length: 20_000 }, (_, i) => `line ${i}`))
      assert.isTrue(packets.every((p) => p.hostname === "web.shop" && p.tag === "web-5d8f7c-x2x9q"))
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await receiver.stop()
      dirs.remove()
    }
  }, 90_000)

  it("names logs after the pod's deployment and routes them by its annotation (KUBERNETES_DATASOURCE=true)", async () => {
    const dirs = NodeLayout.make()
    const [http, sink] = await freePorts(2)
    const receiver = await SyslogReceiver.listen(sink!)
    const fake = await FakeKubeApi.listen()
    fake.create("deployments", {
      name: "web",
      namespace: "shop",
      annotations: { "logtrain.akkeris.io/drains": `syslog+tcp://127.0.0.1:${sink}`, "logtrain.akkeris.io/tag": "frontend" }
    })
    fake.create("replicasets", { name: "web-5d8f7c", namespace: "shop", owner: { kind: "Deployment", name: "web" } })
    fake.create("pods", { name: "web-5d8f7c-x2x9q", namespace: "shop", nodeName: "node-1", owner: { kind: "ReplicaSet", name: "web-5d8f7c" } })
    const { file } = dirs.container("web-5d8f7c-x2x9q", "shop")
    const lt = LogtrainProcess.start({
      ...dirs.env(http!),
      KUBERNETES_DATASOURCE: "true",
      NODE: "node-1"
    }, ["--kube-config", fake.kubeconfig])
    try {
      await LogtrainProcess.ready(lt)
      await NodeLayout.write(file, "cri", 0, 100, 10_000)
      await receiver.waitFor(100, 10_000)
      const packets = receiver.packets()
      assert.deepStrictEqual(packets.map((p) => p.message), Array.from({ length: 100 }, (_, i) => `line ${i}`))
      assert.isTrue(packets.every((p) => p.hostname === "web.shop" && p.tag === "frontend"), JSON.stringify(packets[0]))
      // One cache serves both features: the deployments were listed once.
      assert.strictEqual(fake.requests.filter((r) => r.path === "/apis/apps/v1/deployments" && !r.watch).length, 1)
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await fake.stop()
      await receiver.stop()
      dirs.remove()
    }
  }, 60_000)
})
