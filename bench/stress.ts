/**
 * `npm run bench -- --only stress [--stress-seconds 180]`: logtrain's memory under the worst load
 * the issue names, against the original's 128Mi limit. The bundle runs with the container image's
 * settings and the MEMORY_LIMIT it would take from a 128Mi cgroup (MemoryBudget.defaultLimit);
 * into it, for the whole run:
 *
 * - 4 TCP senders at full speed (two with 200 B lines, two with 16 KB lines), each a hostname
 *   routed to a live sink of its own and to 10 drains that are down the whole time (5 syslog+tcp,
 *   5 http, to ports nobody listens on, below the ephemeral range so that no other process takes them);
 * - 52 container log files written at full speed (26 with 200 B lines, 26 with 16 KB lines),
 *   rotated at 10 MiB as the kubelet does;
 * - every hostname (the wildcard) routed to a second live sink.
 *
 * "Full speed" is as fast as logtrain takes it: the files' writers stay at most WINDOW lines ahead
 * of what the live sinks have received of them, the TCP senders likewise (else the files would
 * fill the disk, and rotation would delete what logtrain had not read yet: lines lost where no
 * counter can see them).
 *
 * It reports RSS every 10 s, the peak (VmHWM), every drop by drain and reason, and checks that the
 * drops add up to what was not delivered: for each drain, received = sent + dropped + held; for
 * each live sink, lines written to it = lines it received + its drain's drops and what it holds;
 * for each dead drain, TCP lines sent = what it received (all dropped or held).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs"
import { open } from "node:fs/promises"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as MemoryBudget from "../src/layers/MemoryBudget.ts"
import { parseBytes } from "../src/layers/MemoryLimit.ts"
import { deadPorts, freePorts } from "../test/helpers/ports.ts"
import * as Sink from "./tools/sink.ts"

export interface Tools {
  readonly startLogtrain: (env: Record<string, string>, httpPort: number) => Promise<{ readonly pid: number; stop(): Promise<void>; log(): string }>
  readonly sinkCore: string | undefined
}

const MiB = 1024 * 1024
const LIMIT = 128 * MiB
const FILES = 52
const DEAD = 10
const TCP_SENDERS = 4
/** Lines the writers may be ahead of the live sink, all together. */
const WINDOW = 4000
const ROTATE_AT = 10 * MiB
const ID = "beef".repeat(16)

const reasons = ["buffer_full", "memory", "rejected", "unsupported", "shutdown", "backlog_limit"] as const
type Reason = typeof reasons[number]

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** In MiB (the kernel says kB). */
const rssMB = (pid: number, field: "VmRSS" | "VmHWM" | "RssAnon" | "RssFile") =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024

/** Sum of a metric's series whose labels match `labels` (all of them) and that contain `within`. */
const metric = (text: string, name: string, labels: Record<string, string> = {}, within = ""): number => {
  let sum = 0
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (!line.includes(within)) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  return sum
}

const tcpLine = (host: string, size: number, i: number) => {
  const head = `<134>1 2026-01-01T00:00:00.000000Z ${host} app 1234 - - line ${String(i).padStart(9, "0")} `
  const line = head + "s".repeat(Math.max(0, size - head.length))
  return `${Buffer.byteLength(line)} ${line}`
}

export const stressScenario = async (tools: Tools, seconds: number) => {
  // STRESS_MEMORY_LIMIT=16Mi tries another budget.
  const memoryLimit = process.env.STRESS_MEMORY_LIMIT === undefined
    ? MemoryBudget.defaultLimit(LIMIT)
    : parseBytes(process.env.STRESS_MEMORY_LIMIT)!
  const dir = mkdtempSync(join(tmpdir(), "logtrain-bench-stress-"))
  const containers = join(dir, "containers")
  const state = join(dir, "state")
  mkdirSync(containers)
  mkdirSync(state)
  writeFileSync(join(state, "container-logs.json"), JSON.stringify({ version: 1, files: [] }))
  const paths = Array.from({ length: FILES }, (_, i) => {
    const podDir = join(dir, "pods", `stress_app-${i}_uid`, "app")
    mkdirSync(podDir, { recursive: true })
    const file = join(podDir, "0.log")
    writeFileSync(file, "")
    symlinkSync(file, join(containers, `app-${i}-5d8f7c-x2x9q_stress_app-${ID}.log`))
    return file
  })
  const [http, input, allPort, tcpPort] = await freePorts(4)
  // Outside the ephemeral range: a port freePorts names may be taken by another process's listen(0)
  // during the run, and a dead drain that comes alive breaks the count.
  const dead = (await deadPorts(DEAD)).map((port, i) => (i % 2 === 0 ? `syslog+tcp://127.0.0.1:${port}` : `http://127.0.0.1:${port}/logs`))
  const live = `syslog+tcp://127.0.0.1:${allPort}`
  const liveTcp = `syslog+tcp://127.0.0.1:${tcpPort}`
  const hosts = Array.from({ length: TCP_SENDERS }, (_, i) => `stress-tcp-${i}`)
  const sink = await Sink.startSink(allPort!, tools.sinkCore)
  const tcpSink = await Sink.startSink(tcpPort!, tools.sinkCore)
  const relay = await tools.startLogtrain({
    KUBERNETES: "true",
    KUBERNETES_LOG_PATH: containers,
    STATE_DIR: state,
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(input),
    MEMORY_LIMIT: String(memoryLimit),
    ROUTES: JSON.stringify({ "*": [live], ...Object.fromEntries(hosts.map((h) => [h, [liveTcp, ...dead]])) })
  }, http!)
  const metrics = () => fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text())
  console.log(`  MEMORY_LIMIT ${(memoryLimit / MiB).toFixed(1)} MiB (the default for a 128Mi container: ${(MemoryBudget.defaultLimit(LIMIT) / MiB).toFixed(1)}); ${seconds} s`)

  let written = 0
  let tcpWritten = 0
  const load = { running: true }
  // What the live drains dropped (they may, at full speed): lines that will never arrive, read
  // from /metrics twice a second.
  const liveDropped = { all: 0, tcp: 0 }
  const droppedOf = (text: string, url: string) => {
    const port = `127.0.0.1:${/:(\d+)$/.exec(url)![1]}`
    return metric(text, "logtrain_drain_dropped_total", {}, port)
  }
  const dropWatch = setInterval(() => {
    void metrics().then((text) => {
      liveDropped.all = droppedOf(text, live)
      liveDropped.tcp = droppedOf(text, liveTcp)
    }, () => {})
  }, 500)
  /** Waits while the files' lines (or, `tcp`, the TCP lines) not received nor dropped yet are more than WINDOW. */
  const ahead = async (tcp: boolean) => {
    const outstanding = () =>
      tcp
        ? tcpWritten - tcpSink.received() - liveDropped.tcp
        : written - tcpWritten - (sink.received() + liveDropped.all - tcpSink.received() - liveDropped.tcp)
    while (load.running && outstanding() > WINDOW) await sleep(5)
  }

  const writer = async (path: string, f: number) => {
    const size = f % 2 === 0 ? 200 : 16 * 1024
    const pad = "y".repeat(size - 60)
    let handle = await open(path, "a")
    let bytes = 0
    let n = 0
    while (load.running) {
      await ahead(false)
      if (!load.running) break
      let chunk = ""
      const lines = size === 200 ? 200 : 4
      for (let k = 0; k < lines; k++, n++) chunk += `2026-01-01T00:00:00.123456789Z stdout F ${String(n).padStart(9, "0")} ${pad}\n`
      await handle.write(chunk)
      written += lines
      bytes += chunk.length
      if (bytes >= ROTATE_AT) {
        // As the kubelet: the previous rotated file goes, the current one is renamed, a new one starts.
        await handle.close()
        try {
          unlinkSync(`${path}.1`)
        } catch {}
        renameSync(path, `${path}.1`)
        handle = await open(path, "a")
        bytes = 0
      }
    }
    await handle.close()
  }

  const sender = async (host: string, s: number) => {
    const size = s % 2 === 0 ? 200 : 16 * 1024
    const socket = await new Promise<Net.Socket>((resolve, reject) => {
      const c = Net.createConnection({ host: "127.0.0.1", port: input! }, () => resolve(c))
      c.once("error", reject)
    })
    let n = 0
    while (load.running) {
      await ahead(true)
      if (!load.running) break
      let chunk = ""
      const lines = size === 200 ? 500 : 8
      for (let k = 0; k < lines; k++, n++) chunk += tcpLine(host, size, n)
      written += lines
      tcpWritten += lines
      if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r))
    }
    await new Promise<void>((r) => socket.end(() => r()))
  }

  const samples: Array<Record<string, number>> = []
  const started = Date.now()
  // The kernel keeps the peak of all resident memory (VmHWM), not of its anonymous part: that is
  // what a cgroup cannot reclaim (the pages of the node binary, file-backed, it can), looked at
  // every 200 ms.
  let peakAnon = 0
  const anonWatch = setInterval(() => {
    if (existsSync(`/proc/${relay.pid}`)) peakAnon = Math.max(peakAnon, rssMB(relay.pid, "RssAnon"))
  }, 200)
  const loading = [...paths.map(writer), ...hosts.map(sender)]
  const sampler = (async () => {
    while (load.running) {
      await sleep(10_000)
      if (!existsSync(`/proc/${relay.pid}`)) {
        load.running = false
        throw new Error(`logtrain ended during the run; its log ends:\n${relay.log().split("\n").slice(-30).join("\n")}`)
      }
      const at = Math.round((Date.now() - started) / 1000)
      const rss = Number(rssMB(relay.pid, "VmRSS").toFixed(1))
      const text = await metrics().catch(() => "")
      const mib = (name: string, labels: Record<string, string> = {}) => Number((metric(text, name, labels) / MiB).toFixed(1))
      const sample = {
        at,
        rssMB: rss,
        anonMB: Number(rssMB(relay.pid, "RssAnon").toFixed(1)),
        fileMB: Number(rssMB(relay.pid, "RssFile").toFixed(1)),
        heapUsedMB: mib("nodejs_heap_size_used_bytes"),
        heapTotalMB: mib("nodejs_heap_size_total_bytes"),
        externalMB: mib("nodejs_external_memory_bytes"),
        drainsHeldMB: mib("logtrain_memory_held_bytes", { holder: "drains" }),
        ingestHeldMB: mib("logtrain_memory_held_bytes", { holder: "ingest" })
      }
      samples.push(sample)
      console.log(
        `    ${String(at).padStart(4)} s  RSS ${rss} MiB (anonymous ${sample.anonMB}, file ${sample.fileMB})  peak ${rssMB(relay.pid, "VmHWM").toFixed(1)}  heap ${sample.heapUsedMB}/${sample.heapTotalMB}  external ${sample.externalMB}  held: drains ${sample.drainsHeldMB} ingest ${sample.ingestHeldMB}  files ${written - tcpWritten} TCP ${tcpWritten} written, ${sink.received()} delivered`
      )
    }
  })()
  await sleep(seconds * 1000)
  load.running = false
  await Promise.all(loading)
  await sampler
  // What logtrain still reads or holds for the live sinks: until they are quiet for 5 s.
  let last = -1
  let quietSince = Date.now()
  while (Date.now() - quietSince < 5000) {
    if (sink.received() + tcpSink.received() !== last) {
      last = sink.received() + tcpSink.received()
      quietSince = Date.now()
    }
    await sleep(200)
  }
  const text = await metrics()
  clearInterval(anonWatch)
  clearInterval(dropWatch)
  const peakRssMB = Number(rssMB(relay.pid, "VmHWM").toFixed(1))
  const peakAnonMB = Number(peakAnon.toFixed(1))
  const drainRow = (drain: string) => {
    // The drain label is its URL as logtrain shows it: found by its port.
    const port = `127.0.0.1:${/:(\d+)/.exec(drain.slice(drain.indexOf("//")))![1]}`
    const of = (name: string, labels: Record<string, string> = {}) => metric(text, name, labels, port)
    const dropped = (reason: Reason) => of("logtrain_drain_dropped_total", { reason })
    return {
      drain,
      received: of("logtrain_drain_received_total"),
      sent: of("logtrain_drain_sent_total"),
      held: of("logtrain_drain_buffer_depth"),
      buffer_full: dropped("buffer_full"),
      memory: dropped("memory"),
      rejected: dropped("rejected"),
      unsupported: dropped("unsupported"),
      shutdown: dropped("shutdown"),
      backlog_limit: dropped("backlog_limit")
    }
  }
  const rows = [live, liveTcp, ...dead].map(drainRow)
  console.table(rows)
  const problems: Array<string> = []
  for (const row of rows) {
    const droppedInBuffer = row.buffer_full + row.memory + row.rejected + row.unsupported + row.shutdown
    if (row.received !== row.sent + droppedInBuffer + row.held) {
      problems.push(`${row.drain}: received ${row.received} ≠ sent ${row.sent} + dropped ${droppedInBuffer} + held ${row.held}`)
    }
  }
  const delivered = sink.received()
  for (const [row, sent, got] of [[rows[0]!, written, delivered], [rows[1]!, tcpWritten, tcpSink.received()]] as const) {
    const dropped = row.buffer_full + row.memory + row.rejected + row.unsupported + row.shutdown + row.backlog_limit
    if (sent !== got + dropped + row.held) {
      problems.push(`${row.drain}: written ${sent} ≠ delivered ${got} + dropped ${dropped} + held ${row.held}`)
    }
  }
  for (const row of rows.slice(2)) {
    if (row.received !== tcpWritten) problems.push(`${row.drain}: received ${row.received} of the ${tcpWritten} TCP lines`)
  }
  const droppedByReason = Object.fromEntries(reasons.map((reason) => [reason, rows.reduce((n, r) => n + r[reason], 0)]))
  const result = {
    scenario: "stress",
    relay: "logtrain",
    seconds,
    memoryLimitMiB: Number((memoryLimit / MiB).toFixed(1)),
    peakRssMB,
    peakAnonymousMB: peakAnonMB,
    rssEvery10s: samples,
    written,
    tcpWritten,
    delivered,
    tcpDelivered: tcpSink.received(),
    droppedByReason,
    ingestLimited: {
      wait: metric(text, "logtrain_memory_limited_total", { holder: "ingest", action: "wait" }),
      drop: metric(text, "logtrain_memory_limited_total", { holder: "ingest", action: "drop" })
    },
    parked: metric(text, "logtrain_router_parked_total"),
    problems
  }
  console.log(`  peak RSS ${peakRssMB} MiB (${peakRssMB < LIMIT / MiB ? "under" : "OVER"} the 128 MiB limit), of it anonymous at most ${peakAnonMB} MiB; written ${written}, delivered ${delivered}; dropped by reason ${JSON.stringify(droppedByReason)}`)
  console.log(problems.length === 0 ? "  drops add up to what was not delivered" : `  DOES NOT ADD UP:\n    ${problems.join("\n    ")}`)
  await relay.stop()
  await sink.stop()
  await tcpSink.stop()
  rmSync(dir, { recursive: true, force: true })
  return result
}
