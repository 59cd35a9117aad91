/**
 * logtail with three replicas sharing Redis (the bundle: `npm run build` first): how long a line
 * takes from arriving at one replica to a live tail served by another, and each replica's memory.
 *
 * Three processes of dist/bundle/logtail.js on 127.0.0.1-3 (STORAGE_ADAPTER=redis, the machine's
 * Redis, database 6, a key prefix of this run's own); a tail made on replica 1 and opened on
 * replica 2; N lines sent to replica 1 over one TCP connection at a steady rate, each carrying the
 * time it was written. Prints p50/p90/p99/max of the delay, what arrived, and RSS (and V8 heap)
 * of each replica before and after, and at peak.
 *
 *   npm run build && npm run bench:logtail-replicas -- [lines=10000] [lines/s=2000]
 *   ENTRY=<another bundle's logtail.js> …   # an older build, for an A/B
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import * as Net from "node:net"
import { join } from "node:path"

const total = Number(process.argv[2] ?? 10_000)
const rate = Number(process.argv[3] ?? 2000)
// SAME=1: the tail on replica 1 itself (its own lines go to it without Redis), for comparison.
const reader = process.env.SAME === "1" ? 0 : 1
const entry = process.env.ENTRY ?? join(import.meta.dirname, "../dist/bundle/logtail.js")
const HTTP_PORT = 19650
const SYSLOG_PORT = 19652
const hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
const prefix = `logtail-bench-${randomBytes(4).toString("hex")} `
const app = `bench-${randomBytes(3).toString("hex")}.shop`

const replicas: Array<ChildProcess> = hosts.map((host) =>
  spawn(process.execPath, [entry], {
    env: {
      PATH: process.env.PATH ?? "",
      LISTEN_ADDRESS: host,
      HTTP_PORT: String(HTTP_PORT),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(SYSLOG_PORT),
      STORAGE_ADAPTER: "redis",
      DEIS_LOGGER_REDIS_DB: "6",
      LOGTAIL_REDIS_PREFIX: prefix,
      LOG_LEVEL: "warn",
      // As the image runs it.
      NODE_OPTIONS: "--max-semi-space-size=4",
      MALLOC_ARENA_MAX: "2"
    },
    stdio: ["ignore", "ignore", "inherit"]
  })
)
const stop = () => {
  for (const child of replicas) child.kill("SIGTERM")
}
process.on("exit", stop)

const base = (i: number) => `http://${hosts[i]}:${HTTP_PORT}`
for (let i = 0; i < hosts.length; i++) {
  const deadline = Date.now() + 20_000
  while (!(await fetch(`${base(i)}/readyz`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline) throw new Error(`replica ${i + 1} not ready`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const memory = async () =>
  Promise.all(hosts.map(async (_, i) => {
    const text = await fetch(`${base(i)}/metrics`).then((r) => r.text())
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN) / 1024 / 1024
    return { rss: value("process_resident_memory_bytes"), heap: value("nodejs_heap_size_used_bytes") }
  }))
const peakOf = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024

await new Promise((r) => setTimeout(r, 1000))
const idle = await memory()

// A tail made on replica 1, opened on replica 2.
const created = await fetch(`${base(0)}/tails`, { method: "POST", body: JSON.stringify({ hostname: app }) })
const { url } = (await created.json()) as { url: string }
const abort = new AbortController()
const response = await fetch(url.replace(/^http:\/\/[^/]+/, base(reader)), { signal: abort.signal })
const delays: Array<number> = []
const received = (async () => {
  const decoder = new TextDecoder()
  let buffered = ""
  try {
    for await (const chunk of response.body!) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true })
      const lines = buffered.split("\n")
      buffered = lines.pop()!
      const now = performance.timeOrigin + performance.now()
      for (const line of lines) {
        const sent = /sent=([0-9.]+)/.exec(line)
        if (sent !== null) delays.push(now - Number(sent[1]))
      }
      if (delays.length >= total) break
    }
  } catch {
    // aborted
  }
})()
// Other replicas learn of the tail from its announcement: give it a moment.
await new Promise((r) => setTimeout(r, 300))

const socket = Net.createConnection({ host: hosts[0], port: SYSLOG_PORT })
await new Promise<void>((r) => socket.once("connect", () => r()))
// Small writes every 2 ms: without this, Nagle's algorithm holds them for the peer's delayed ACK (40 ms).
socket.setNoDelay(true)
const pad = "x".repeat(100)
let sent = 0
const started = performance.now()
await new Promise<void>((resolve) => {
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate))
    let frames = ""
    const at = (performance.timeOrigin + performance.now()).toFixed(3)
    for (; sent < due; sent++) {
      const line = `<134>1 2026-01-01T00:00:00.000Z ${app} bench - - - n=${sent} sent=${at} ${pad}`
      frames += `${Buffer.byteLength(line)} ${line}`
    }
    if (frames !== "") socket.write(frames)
    if (sent >= total) return resolve()
    setTimeout(tick, 2)
  }
  tick()
})
socket.end()
const deadline = Date.now() + 30_000
while (delays.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
abort.abort()
await received
const after = await memory()
const peaks = replicas.map((child) => peakOf(child.pid!))
const missed = await fetch(`${base(reader)}/metrics`).then((r) => r.text()).then((t) => /^logtail_tail_missed_total (\S+)$/m.exec(t)?.[1] ?? "?")

const sorted = delays.toSorted((a, b) => a - b)
const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]?.toFixed(2)
console.log(`lines: ${total} sent to replica 1 at ${rate}/s, ${delays.length} arrived on the tail served by replica ${reader + 1} (missed counted: ${missed})`)
console.log(`delay ms: p50 ${at(0.5)}  p90 ${at(0.9)}  p99 ${at(0.99)}  max ${sorted.at(-1)?.toFixed(2)}`)
for (let i = 0; i < hosts.length; i++) {
  console.log(
    `replica ${i + 1}: RSS idle ${idle[i]!.rss.toFixed(1)} MB, after ${after[i]!.rss.toFixed(1)} MB, peak ${peaks[i]!.toFixed(1)} MB; heap used idle ${
      idle[i]!.heap.toFixed(1)
    } MB, after ${after[i]!.heap.toFixed(1)} MB`
  )
}
stop()
process.exit(0)
