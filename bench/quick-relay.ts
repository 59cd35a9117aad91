/**
 * A quick relay measurement (the full harness against rsyslog/syslog-ng comes later): N RFC 5424
 * lines, octet-counted, over one TCP connection into logtrain's TCP input, routed by hostname to a
 * syslog+tcp drain whose receiver counts lines. Prints lines/s end to end, CPU time and peak RSS
 * of the logtrain process.
 *
 *   node bench/quick-relay.ts [lines=1000000]
 *   PIN_CPU=1 taskset -c 0 node bench/quick-relay.ts 2000000   # logtrain alone on core 1
 */
import { spawn } from "node:child_process"
import * as Net from "node:net"
import { readFileSync } from "node:fs"
import { startSink } from "./tools/sink.ts"

const total = Number(process.argv[2] ?? 1_000_000)
const framing = "newline"
const SINK_PORT = 19601, TCP_PORT = 19602, HTTP_PORT = 19600

// The drain uses newline framing; the sink, in its own process, counts LF bytes.
const sink = await startSink(SINK_PORT)

// PIN_CPU=1 runs logtrain on that core alone (taskset), so the figure is "on one core".
const nodeArgs = [...(process.env.NODE_FLAGS ?? "").split(" ").filter(Boolean), "src/programs/logtrain.ts"]
const pin = process.env.PIN_CPU
const child = spawn(pin ? "taskset" : process.execPath, pin ? ["-c", pin, process.execPath, ...nodeArgs] : nodeArgs, {
  env: {
    ...process.env,
    SYSLOG_TCP: "true", SYSLOG_TCP_PORT: String(TCP_PORT), HTTP_PORT: String(HTTP_PORT), LISTEN_ADDRESS: "127.0.0.1",
    ROUTES: JSON.stringify({ "bench-host": [`syslog+tcp://127.0.0.1:${SINK_PORT}?framing=${framing}`] }),
    LOG_LEVEL: "warn"
  },
  stdio: ["ignore", "inherit", "inherit"]
})
const pid = child.pid!
const cpuOf = () => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(stat[11]) + Number(stat[12])) / 100 // utime + stime, in seconds (USER_HZ 100)
}
let peakRss = 0
const rssTimer = setInterval(() => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    if (m) peakRss = Math.max(peakRss, Number(m[1]) / 1024)
  } catch {}
}, 100)

// Wait for readiness.
for (let i = 0; i < 100; i++) {
  const ok = await fetch(`http://127.0.0.1:${HTTP_PORT}/readyz`).then((r) => r.ok, () => false)
  if (ok) break
  await new Promise((r) => setTimeout(r, 100))
}

const pad = "x".repeat(120)
const line = (i: number) => `<134>1 2024-01-01T00:00:00.000Z bench-host app 1234 - - message ${i} ${pad}`
const cpu0 = cpuOf()
const start = performance.now()
const client = Net.createConnection({ host: "127.0.0.1", port: TCP_PORT })
await new Promise<void>((r) => client.once("connect", () => r()))
let i = 0
const write = (): void => {
  while (i < total) {
    let chunk = ""
    for (let k = 0; k < 500 && i < total; k++, i++) {
      const l = line(i)
      chunk += `${Buffer.byteLength(l)} ${l}`
    }
    if (!client.write(chunk)) {
      client.once("drain", write)
      return
    }
  }
}
write()
let lastLog = performance.now()
// `received` is updated by the sink's stdout handler, which the loop awaits between checks.
// oxlint-disable-next-line no-unmodified-loop-condition
while (sink.received() < total) {
  await new Promise((r) => setTimeout(r, 20))
  if (performance.now() - lastLog > 250) {
    lastLog = performance.now()
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    const metrics = await fetch(`http://127.0.0.1:${HTTP_PORT}/metrics`).then((r) => r.text(), () => "")
    const depth = (name: string) => /\n([a-z_]+depth[^ ]*) (\d+)/g.exec(metrics) && [...metrics.matchAll(new RegExp(`${name}[^\\n]* (\\d+)`, "g"))].map((x) => x[1]).join("/")
    console.error(`  ${Math.round((lastLog - start) / 1000)}s sent=${i} received=${sink.received()} rss=${Number(m?.[1]) / 1024 | 0}MB ingest=${depth("logtrain_ingest_depth")} drain=${depth("logtrain_drain_buffer_depth")} dropped=${depth("logtrain_drain_dropped_total")}`)
  }
  if (performance.now() - start > 120_000) break
}
const seconds = (performance.now() - start) / 1000
const cpu = cpuOf() - cpu0
clearInterval(rssTimer)
console.log(JSON.stringify({
  lines: total, received: sink.received(), framing, seconds: +seconds.toFixed(2), linesPerSecond: Math.round(sink.received() / seconds),
  cpuSeconds: +cpu.toFixed(2), cpuSecondsPerMillion: +(cpu / (total / 1e6)).toFixed(2), peakRssMB: +peakRss.toFixed(1)
}))
client.end()
child.kill("SIGTERM")
await sink.stop()
await new Promise((r) => child.once("exit", r))
process.exit(0)
