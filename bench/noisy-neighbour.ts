/**
 * `npm run bench:noisy-neighbour`: does an app flooding its node lower another app's delivered
 * rate, with and without a rate limit on it (logtrain.akkeris.io/rate-limit)?
 *
 *   npm run bench:noisy-neighbour -- [calm lines=1000000] [noisy lines=3000000] [limit=1000/s]
 *
 * logtrain (the sources, or ENTRY=<script>) follows the container log directory; each app routes
 * to its own syslog+tcp receiver (count-sink, own process), named through the fake Kubernetes API.
 * The files are written beforehand (no writer competes for the CPU) and linked into the directory
 * at once: logtrain reads both from their start, as fast as it can — the noisy app floods. The time
 * until the calm app's last line arrives gives its rate. Three runs, each a fresh logtrain: the calm
 * app alone; beside the noisy app, limited; the same, not limited. Prints the calm app's lines/s
 * in each, and what the noisy app got through.
 */
import { spawn } from "node:child_process"
import { appendFileSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as FakeKubeApi from "../test/helpers/FakeKubeApi.ts"
import * as NodeLayout from "../test/helpers/NodeLayout.ts"
import { freePorts } from "../test/helpers/ports.ts"
import { startSink } from "./tools/sink.ts"

const [calmLines = 1_000_000, noisyLines = 3_000_000] = process.argv.slice(2, 4).map(Number)
const limit = process.argv[4] ?? "1000/s"
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const entry = process.env.ENTRY ?? join(import.meta.dirname, "../src/programs/logtrain.ts")
const T = "2026-01-01T00:00:00.000000000Z"
const text = (app: string, from: number, count: number) => {
  let out = ""
  for (let n = from; n < from + count; n++) out += `${T} stdout F ${app} line ${String(n).padStart(9, "0")} ${"x".repeat(60)}\n`
  return out
}

const run = async (noisy: "quiet" | "limited" | "unlimited") => {
  const dirs = NodeLayout.make()
  const [http, calmPort, noisyPort] = await freePorts(3)
  const calmSink = await startSink(calmPort!)
  const noisySink = await startSink(noisyPort!)
  const fake = await FakeKubeApi.listen()
  const workload = (name: string, annotations: Record<string, string>) => {
    fake.create("deployments", { name, namespace: "shop", annotations })
    fake.create("replicasets", { name: `${name}-5d8f7c`, namespace: "shop", owner: { kind: "Deployment", name } })
    fake.create("pods", { name: `${name}-5d8f7c-x2x9q`, namespace: "shop", nodeName: "node-1", owner: { kind: "ReplicaSet", name: `${name}-5d8f7c` } })
  }
  workload("calm", { "logtrain.akkeris.io/drains": `syslog+tcp://127.0.0.1:${calmPort}` })
  workload("noisy", {
    "logtrain.akkeris.io/drains": `syslog+tcp://127.0.0.1:${noisyPort}`,
    ...(noisy === "limited" ? { "logtrain.akkeris.io/rate-limit": limit } : {})
  })
  // Written now, linked into the directory once logtrain is ready (it then reads them from their start).
  const file = (pod: string, content: { readonly app: string; readonly lines: number }) => {
    const dir = join(dirs.root, "pods", `shop_${pod}_uid`, "app")
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "0.log"), "")
    for (let n = 0; n < content.lines; n += 100_000) appendFileSync(join(dir, "0.log"), text(content.app, n, Math.min(100_000, content.lines - n)))
    return () => symlinkSync(join(dir, "0.log"), join(dirs.containers, `${pod}_shop_app-${NodeLayout.CONTAINER_ID}.log`))
  }
  const linkCalm = file("calm-5d8f7c-x2x9q", { app: "calm", lines: calmLines })
  const linkNoisy = noisy === "quiet" ? () => {} : file("noisy-5d8f7c-x2x9q", { app: "noisy", lines: noisyLines })
  const child = spawn(process.execPath, [entry, "--kube-config", fake.kubeconfig], {
    env: {
      PATH: process.env.PATH ?? "",
      HTTP_PORT: String(http),
      LISTEN_ADDRESS: "127.0.0.1",
      KUBERNETES: "true",
      KUBERNETES_DATASOURCE: "true",
      KUBERNETES_LOG_PATH: dirs.containers,
      STATE_DIR: dirs.state,
      NODE_NAME: "node-1"
    },
    stdio: ["ignore", "ignore", "inherit"]
  })
  while (!(await fetch(`http://127.0.0.1:${http}/readyz`).then((r) => r.ok, () => false))) await sleep(50)
  await sleep(500)
  const start = Date.now()
  linkNoisy()
  linkCalm()
  while (calmSink.received() < calmLines) await sleep(10)
  const seconds = (Date.now() - start) / 1000
  const noisyDelivered = noisySink.received()
  const result = { noisy, calmPerSecond: Math.round(calmLines / seconds), seconds, noisyDelivered }
  child.kill("SIGTERM")
  await new Promise((r) => child.once("exit", r))
  await Promise.all([calmSink.stop(), noisySink.stop(), fake.stop()])
  dirs.remove()
  return result
}

for (const noisy of ["quiet", "limited", "unlimited"] as const) {
  const r = await run(noisy)
  console.log(
    `noisy app ${noisy.padEnd(9)} calm app ${String(r.calmPerSecond).padStart(7)} lines/s` +
      ` (${r.seconds.toFixed(2)} s)` +
      (noisy === "quiet" ? "" : `; noisy app: ${r.noisyDelivered} of ${noisyLines} delivered meanwhile${noisy === "limited" ? ` (limit ${limit})` : ""}`)
  )
}
