/**
 * Memory of the Kubernetes datasource: logtrain's RSS while it follows 1500 deployments and the
 * 200 pods of its node in the fake API server, against the same process with the Kubernetes
 * layers off (the same 1500 routes given through ROUTES instead), and what importing
 * @kubernetes/client-node alone costs.
 *
 *   node bench/kubernetes-memory.ts [deployments=1500] [pods=200] [bytes of bulk per object=6000]
 *   ENTRY=dist/bundle/logtrain.js node bench/kubernetes-memory.ts     # the bundle (npm run build)
 *
 * Objects carry bulk (managedFields, as real ones do) that logtrain must not keep. RSS is sampled
 * every 200 ms for 5 s after /readyz says ready and 3 s of settling; the median is reported, with
 * the peak (VmHWM).
 */
import { execFileSync, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as FakeKubeApi from "../test/helpers/FakeKubeApi.ts"
import { freePorts } from "../test/helpers/ports.ts"

const deployments = Number(process.argv[2] ?? 1500)
const pods = Number(process.argv[3] ?? 200)
const bulk = Number(process.argv[4] ?? 6000)
// ENTRY=dist/bundle/logtrain.js measures the bundle (npm run build) instead of the sources.
const entry = process.env.ENTRY ?? join(import.meta.dirname, "../src/programs/logtrain.ts")
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const status = (pid: number, field: string) =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024

const measure = async (name: string, env: Record<string, string>, args: ReadonlyArray<string> = []) => {
  const [http, tcp] = await freePorts(2)
  const child = spawn(process.execPath, [entry, ...args], {
    env: { PATH: process.env.PATH ?? "", LISTEN_ADDRESS: "127.0.0.1", HTTP_PORT: String(http), SYSLOG_TCP: "true", SYSLOG_TCP_PORT: String(tcp), ...env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
  const started = Date.now()
  while (!(await fetch(`http://127.0.0.1:${http}/readyz`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null || Date.now() - started > 60_000) throw new Error(`${name}: not ready\n${stderr}`)
    await sleep(50)
  }
  const readyMs = Date.now() - started
  await sleep(3000)
  const samples: Array<number> = []
  for (let i = 0; i < 25; i++) {
    samples.push(status(child.pid!, "VmRSS"))
    await sleep(200)
  }
  const peak = status(child.pid!, "VmHWM")
  const metrics = await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text())
  const routes = Number(/^logtrain_routes (\d+)/m.exec(metrics)?.[1])
  const heap = Number(/^nodejs_heap_size_used_bytes (\d+)/m.exec(metrics)?.[1]) / 1024 / 1024
  child.kill("SIGTERM")
  await new Promise((r) => child.once("exit", r))
  samples.sort((a, b) => a - b)
  const rss = samples[Math.floor(samples.length / 2)]!
  console.log(`${name.padEnd(34)} rss ${rss.toFixed(1)} MB  peak ${peak.toFixed(1)} MB  heap used ${heap.toFixed(1)} MB  routes ${routes}  ready in ${readyMs} ms`)
  return rss
}

const fake = await FakeKubeApi.listen({ bookmarkIntervalMs: 5000 })
const routes: Record<string, Array<string>> = {}
for (let i = 0; i < deployments; i++) {
  const name = `app-${i}`
  const drains = i % 4 === 0 ? { "logtrain.akkeris.io/drains": `syslog+tcp://127.0.0.1:${10_000 + (i % 50)}` } : undefined
  fake.create("deployments", { name, namespace: `space-${i % 40}`, padding: bulk, ...(drains ? { annotations: drains } : {}) })
  if (drains) routes[`${name}.space-${i % 40}`] = [drains["logtrain.akkeris.io/drains"]]
}
for (let i = 0; i < pods; i++) {
  const owner = `app-${i}`
  fake.create("replicasets", { name: `${owner}-5d8f7c`, namespace: `space-${i % 40}`, owner: { kind: "Deployment", name: owner } })
  fake.create("pods", {
    name: `${owner}-5d8f7c-x${i}`,
    namespace: `space-${i % 40}`,
    nodeName: "node-1",
    owner: { kind: "ReplicaSet", name: `${owner}-5d8f7c` },
    padding: bulk
  })
}
// Pods of other nodes: listed by nobody here.
for (let i = 0; i < pods * 5; i++) fake.create("pods", { name: `other-${i}`, namespace: "elsewhere", nodeName: `node-${2 + (i % 5)}`, padding: bulk })

console.log(`node ${process.version}; ${deployments} deployments, ${pods} pods on this node, ${bulk} bytes of bulk per object`)
const base = await measure("without Kubernetes (ROUTES)", { ROUTES: JSON.stringify(routes) })
const kube = await measure("KUBERNETES_DATASOURCE=true", { KUBERNETES_DATASOURCE: "true", NODE_NAME: "node-1" }, ["--kube-config", fake.kubeconfig])
await fake.stop()

const importRss = (code: string) =>
  Number(execFileSync(process.execPath, ["--input-type=module", "-e", `${code}; console.log(process.memoryUsage().rss)`], {
    cwd: join(import.meta.dirname, "..")
  }).toString()) / 1024 / 1024
const bare = importRss("")
const client = importRss(`await import("@kubernetes/client-node")`)
console.log(`importing @kubernetes/client-node alone: +${(client - bare).toFixed(1)} MB (node ${bare.toFixed(1)} MB → ${client.toFixed(1)} MB)`)
console.log(`Kubernetes datasource: +${(kube - base).toFixed(1)} MB (logtrain talks to the API itself: the client library, +${(client - bare).toFixed(1)} MB on its own, is loaded only for exec/auth-provider logins)`)
process.exit(0)
