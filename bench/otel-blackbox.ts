/**
 * The OTLP and Loki drains black-box: the built bundle (as the image runs it) relays N syslog lines
 * over TCP to the OTLP stand-in (official definitions, protobufjs) and the Loki stand-in (strict
 * order) at once, while the faults of real receivers happen: the OTLP receiver goes away for two
 * seconds, then answers 503 with `Retry-After: 1` for three; Loki answers 429 with
 * `Retry-After: 1` for two seconds, then 500 for two. Then it checks that every line arrived (counting duplicates), in
 * order in Loki's stream, and prints what logtrain's metrics say.
 *
 *   npm run build && node bench/otel-blackbox.ts [lines=100000]
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import * as Net from "node:net"
import { join } from "node:path"
import * as FakeLoki from "../test/helpers/FakeLoki.ts"
import * as OtlpReceiver from "../test/helpers/OtlpReceiver.ts"
import { freePorts } from "../test/helpers/ports.ts"

const total = Number(process.argv[2] ?? 100_000)
const bundle = join(import.meta.dirname, "../dist/bundle/logtrain.js")
if (!existsSync(bundle)) throw new Error("no bundle: npm run build first")
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const HOST = "blackbox.app"

const [http, input] = await freePorts(2)
const otlp = await OtlpReceiver.listen()
const loki = await FakeLoki.listen()
const child: ChildProcess = spawn(process.execPath, [bundle], {
  env: {
    PATH: process.env.PATH ?? "",
    HOME: "/tmp",
    LISTEN_ADDRESS: "127.0.0.1",
    HTTP_PORT: String(http),
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(input),
    // TCP backpressure instead of drops while a receiver is away: what is measured is the drains.
    DRAIN_WHEN_FULL: "block",
    DRAIN_RETRY_MAX_DELAY: "2s",
    ROUTES: JSON.stringify({ [HOST]: [`otlp+http://127.0.0.1:${otlp.port}`, `loki+http://127.0.0.1:${loki.port}?labels=level`] })
  },
  stdio: ["ignore", "ignore", "pipe"]
})
let log = ""
child.stderr!.on("data", (d: Buffer) => (log += d.toString()))
while (!(await fetch(`http://127.0.0.1:${http}/readyz`).then((r) => r.ok, () => false))) {
  if (child.exitCode !== null) throw new Error(`logtrain exited:\n${log}`)
  await sleep(50)
}

const line = (i: number) => {
  const text = `<134>1 ${new Date(Date.UTC(2026, 0, 1) + i).toISOString()} ${HOST} app 1234 - - ${"x".repeat(100)} line ${String(i).padStart(9, "0")}`
  return `${Buffer.byteLength(text)} ${text}`
}
const started = performance.now()
const socket = await new Promise<Net.Socket>((resolve, reject) => {
  const s = Net.createConnection({ host: "127.0.0.1", port: input! }, () => resolve(s))
  s.once("error", reject)
})
const sending = (async () => {
  for (let sent = 0; sent < total; sent += 1000) {
    let chunk = ""
    for (let i = sent; i < Math.min(total, sent + 1000); i++) chunk += line(i)
    if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r))
  }
  await new Promise<void>((r) => socket.end(() => r()))
})()

const faults = (async () => {
  await sleep(500)
  console.log(`faults: OTLP receiver down 2 s, then 503 + Retry-After: 1 for 3 s (from ${otlp.records().length} records); Loki 429 + Retry-After: 1 for 2 s, then 500 for 2 s (from ${loki.lines().length})`)
  await otlp.stop()
  loki.status = 429
  loki.retryAfter = "1"
  await sleep(2000)
  loki.status = 500
  loki.retryAfter = undefined
  await otlp.start()
  otlp.answer = { status: 503, retryAfter: "1" }
  await sleep(2000)
  loki.status = 204
  await sleep(1000)
  otlp.answer = undefined
  console.log(`faults over (OTLP ${otlp.records().length}, Loki ${loki.lines().length} received so far)`)
})()

const numbers = (messages: ReadonlyArray<string>) => messages.map((m) => Number(m.slice(m.lastIndexOf(" ") + 1)))
const deadline = Date.now() + 180_000
while ((new Set(numbers(otlp.records().map((r) => String(r.body)))).size < total || new Set(numbers(loki.lines())).size < total) && Date.now() < deadline) {
  await sleep(200)
}
await sending
await faults
const seconds = (performance.now() - started) / 1000
const metrics = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text()
child.kill("SIGTERM")
await new Promise((r) => child.once("exit", r))
await otlp.stop()
await loki.stop()

const report = (name: string, received: ReadonlyArray<number>) => {
  const distinct = new Set(received)
  const missing = total - distinct.size
  console.log(`${name}: ${received.length} received, ${distinct.size} distinct of ${total}, ${missing} missing, ${received.length - distinct.size} duplicates`)
  return missing
}
const otlpNumbers = numbers(otlp.records().map((r) => String(r.body)))
const lokiNumbers = numbers(loki.lines())
let lost = report("otlp+http", otlpNumbers) + report("loki+http", lokiNumbers)
const stream = loki.streams.get("{app=\"blackbox.app\", level=\"info\"}")
const inOrder = stream !== undefined && stream.entries.every((e, i) => i === 0 || BigInt(e.ns) >= BigInt(stream.entries[i - 1]!.ns))
console.log(`loki: ${loki.streams.size} stream(s), entries in time order: ${inOrder}; requests by status: ${JSON.stringify(countBy(loki.requests.map((r) => r.status)))}`)
console.log(`otlp: requests by status: ${JSON.stringify(countBy(otlp.attempts.map((a) => a.status)))}`)
console.log(`${seconds.toFixed(1)} s with the faults; logtrain's metrics:`)
for (const l of metrics.split("\n")) if (/^logtrain_drain_(sent|dropped|retries|errors)_total/.test(l) && !l.endsWith(" 0")) console.log(`  ${l}`)
if (!inOrder) lost++
process.exit(lost === 0 ? 0 : 1)

function countBy(values: ReadonlyArray<number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const v of values) out[v] = (out[v] ?? 0) + 1
  return out
}
