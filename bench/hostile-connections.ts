/**
 * Hostile connections against the built bundle, as issue 19 tried them: many TCP connections each
 * holding most of an unfinished frame, TLS handshakes that never finish, HTTP requests whose body
 * never ends. Prints logtrain's RSS before, at its peak, right after the connections close and a
 * minute later, with what /metrics says about connections and limits.
 *
 *   npm run build && node bench/hostile-connections.ts frames [connections=5000] [bytes=65000] [settle seconds=60]
 *   node bench/hostile-connections.ts handshakes [connections=500] [hold seconds=30]
 *   node bench/hostile-connections.ts http [requests=300] [hold seconds=40]
 *   ENTRY=<another build>/dist/bundle/logtrain.js ...      # an older build, for a before/after
 *   LOGTRAIN_ENV=SYSLOG_MAX_CONNECTIONS=6000,...            # settings for logtrain
 *
 * logtrain runs with the image's settings (NODE_OPTIONS=--max-semi-space-size=4,
 * MALLOC_ARENA_MAX=2). RSS is VmRSS from /proc; the peak is VmHWM.
 */
import { spawn } from "node:child_process"
import { openSync, readdirSync, readFileSync } from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import { join } from "node:path"
import { certificates } from "../test/helpers/certs.ts"
import { freePorts } from "../test/helpers/ports.ts"

const [mode = "frames", ...rest] = process.argv.slice(2)
const entry = process.env.ENTRY ?? join(import.meta.dirname, "../dist/bundle/logtrain.js")
const extraEnv = Object.fromEntries(
  (process.env.LOGTRAIN_ENV ?? "").split(",").filter((kv) => kv.includes("=")).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])
)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const status = (pid: number, field: string) =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024
const mb = (n: number) => `${n.toFixed(1)} MB`

const [http, tcp, tls] = await freePorts(3)
const certs = certificates()
// LOGTRAIN_NODE_ARGS: V8 flags Node refuses in NODE_OPTIONS (e.g. --trace-gc); LOGTRAIN_STDOUT keeps what it prints.
const nodeArgs = (process.env.LOGTRAIN_NODE_ARGS ?? "").split(" ").filter((a) => a !== "")
const child = spawn(process.execPath, [...nodeArgs, entry], {
  cwd: join(entry, "../.."),
  env: {
    PATH: process.env.PATH ?? "",
    LISTEN_ADDRESS: "127.0.0.1",
    NODE_OPTIONS: `--max-semi-space-size=4 ${process.env.LOGTRAIN_NODE_OPTIONS ?? ""}`,
    MALLOC_ARENA_MAX: "2",
    HTTP_PORT: String(http),
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(tcp),
    SYSLOG_TLS: "true",
    SYSLOG_TLS_PORT: String(tls),
    SYSLOG_TLS_CERT_PEM: certs.serverCert,
    SYSLOG_TLS_KEY_PEM: certs.serverKey,
    HTTP_SYSLOG: "true",
    // Everything is delivered (to standard output, discarded), so no drain holds the lines.
    ROUTES: JSON.stringify({ "*": ["stdout://"] }),
    ...extraEnv
  },
  stdio: ["ignore", process.env.LOGTRAIN_STDOUT === undefined ? "ignore" : openSync(process.env.LOGTRAIN_STDOUT, "w"), "pipe"]
})
let stderr = ""
child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
const started = Date.now()
while (!(await fetch(`http://127.0.0.1:${http}/readyz`).then((r) => r.ok, () => false))) {
  if (child.exitCode !== null || Date.now() - started > 30_000) throw new Error(`not ready\n${stderr}`)
  await sleep(50)
}
await sleep(2000)
const pid = child.pid!
const before = status(pid, "VmRSS")
console.log(`${mode}: logtrain ${entry}`)
console.log(`  RSS at rest ${mb(before)}`)

const metricLines = async (pattern: RegExp) => {
  const text = await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text(), () => "")
  return text.split("\n").filter((l) => pattern.test(l) && !l.startsWith("#") && !l.endsWith(" 0"))
}
const report = async (when: string) => {
  console.log(`  ${when}: RSS ${mb(status(pid, "VmRSS"))}, peak ${mb(status(pid, "VmHWM"))}, descriptors ${descriptors()}`)
  for (const line of await metricLines(/^logtrain_input_(connections|errors_total|limited|refused)|^nodejs_heap_size|^nodejs_external/)) {
    console.log(`    ${line}`)
  }
}
const descriptors = () => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return Number.NaN
  }
}

/** Opens `n` connections to `port`, each sending `payload` (if any); resolves once all are open and sent. */
const open = async (n: number, port: number, payload: Buffer | undefined) => {
  const sockets: Array<Net.Socket> = []
  let closedByServer = 0
  for (let i = 0; i < n; i++) {
    const s = Net.connect({ host: "127.0.0.1", port })
    s.on("error", () => {})
    s.on("close", () => closedByServer++)
    s.on("data", () => {})
    sockets.push(s)
    await new Promise<void>((resolve) => {
      s.once("connect", () => {
        if (payload === undefined) return resolve()
        s.write(payload, () => resolve())
      })
      s.once("close", () => resolve())
    })
  }
  return { sockets, closedByServer: () => closedByServer }
}

if (mode === "frames") {
  const n = Number(rest[0] ?? 5000)
  const bytes = Number(rest[1] ?? 65_000)
  const settle = Number(rest[2] ?? 60)
  // A newline-framed line with no newline yet: logtrain must hold it until the rest comes.
  const payload = Buffer.alloc(bytes, "x")
  payload.write("<14>1 2026-01-01T00:00:00Z host app - - - ")
  const t0 = Date.now()
  const { sockets, closedByServer } = await open(n, tcp!, payload)
  console.log(`  ${n} connections opened, ${bytes} bytes each, in ${Date.now() - t0} ms; closed by logtrain so far: ${closedByServer()}`)
  await sleep(2000)
  await report("holding")
  for (const s of sockets) s.destroy()
  await sleep(1000)
  await report("1 s after close")
  await sleep(settle * 1000)
  await report(`${settle} s after close`)
  console.log(`  RSS ${settle} s after close minus at rest: ${mb(status(pid, "VmRSS") - before)}`)
  if (process.env.SNAPSHOT === "1") {
    child.kill("SIGUSR2")
    await sleep(Number(process.env.SNAPSHOT_WAIT ?? 15000))
    await report("after SIGUSR2")
    if (process.env.MAPS === "1") {
      // The mappings holding the most resident memory: glibc arenas, V8 pages, the binary.
      const maps = readFileSync(`/proc/${pid}/smaps`, "utf8").split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)
        .map((m) => ({ head: m.split("\n")[0]!, rss: Number(/\nRss:\s+(\d+)/.exec(m)?.[1] ?? 0), size: Number(/\nSize:\s+(\d+)/.exec(m)?.[1] ?? 0) }))
      const anonymous = maps.filter((m) => !m.head.includes("/"))
      const small = anonymous.filter((m) => m.size <= 1024)
      console.log(`    anonymous ${mb(anonymous.reduce((a, m) => a + m.rss, 0) / 1024)} in ${anonymous.length} mappings; of which ${small.length} of <= 1 MB: ${mb(small.reduce((a, m) => a + m.rss, 0) / 1024)}`)
      const sizes = new Map<number, { n: number; rss: number }>()
      for (const m of small) sizes.set(m.size, { n: (sizes.get(m.size)?.n ?? 0) + 1, rss: (sizes.get(m.size)?.rss ?? 0) + m.rss })
      console.log(`    small mappings by size (kB: count, resident MB): ${[...sizes].toSorted((a, b) => b[1].rss - a[1].rss).slice(0, 6).map(([k, v]) => `${k}: ${v.n}, ${mb(v.rss / 1024)}`).join("; ")}`)
      for (const m of maps.toSorted((a, b) => b.rss - a.rss).slice(0, 8)) console.log(`    ${(m.rss / 1024).toFixed(1)} of ${(m.size / 1024).toFixed(1)} MB ${m.head}`)
    }
  }
} else if (mode === "handshakes") {
  const n = Number(rest[0] ?? 500)
  const hold = Number(rest[1] ?? 30)
  // A TCP connection to the TLS port that never says anything: a handshake that never starts.
  const { sockets, closedByServer } = await open(n, tls!, undefined)
  await sleep(1000)
  await report(`${n} silent connections to the TLS port, 1 s`)
  await sleep(hold * 1000)
  await report(`after ${hold} s (closed by logtrain: ${closedByServer()})`)
  for (const s of sockets) s.destroy()
  await sleep(1000)
  await report("1 s after close")
} else if (mode === "http") {
  const n = Number(rest[0] ?? 300)
  const hold = Number(rest[1] ?? 40)
  const agent = new Http.Agent({ keepAlive: false, maxSockets: Infinity })
  let ended = 0
  const requests: Array<Http.ClientRequest> = []
  for (let i = 0; i < n; i++) {
    const req = Http.request({ host: "127.0.0.1", port: http, method: "POST", path: "/syslog", agent, headers: { "transfer-encoding": "chunked" } })
    req.on("error", () => ended++)
    req.on("response", (res) => {
      res.resume()
      res.on("end", () => ended++)
    })
    // One chunk, then nothing: the body never ends.
    req.write("<14>1 2026-01-01T00:00:00Z host app - - - stalled")
    requests.push(req)
  }
  await sleep(1000)
  await report(`${n} stalled chunked requests, 1 s`)
  await sleep(hold * 1000)
  await report(`after ${hold} s (ended by logtrain: ${ended})`)
  for (const r of requests) r.destroy()
}
child.kill("SIGTERM")
await new Promise((r) => child.once("exit", r))
