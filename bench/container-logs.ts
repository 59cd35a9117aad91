/**
 * The container log input, measured on a real process:
 *
 *   node bench/container-logs.ts throughput [lines=1000000] [files=4]
 *     Files written beforehand (Docker json-file, 100-byte messages), read from their start by
 *     logtrain and routed to a syslog+tcp drain whose receiver (own process) counts lines.
 *     Prints lines/s from the first line to the last, and logtrain's CPU seconds.
 *     PIN_CPU=0 runs logtrain alone on that core ("on one core").
 *
 *   node bench/container-logs.ts memory [files=52] [lines/s per file=20] [seconds=30]
 *     52 files written at 20 lines/s each (CRI) while logtrain follows them; prints RSS (median
 *     of the last half), heap, and that every line arrived.
 *
 *   node bench/container-logs.ts scale [files=2000] [seconds=20]
 *     `files` files of two lines each, read from their start; prints how long until every line
 *     arrived, then logtrain's CPU (% of a core) and RSS over `seconds` while the files are quiet.
 *
 *   node bench/container-logs.ts new-files [files=10000]
 *     logtrain follows an empty directory; `files` files of one line each appear at once; prints
 *     how long until every line arrived (how fast new files are picked up).
 *
 *   node bench/container-logs.ts backlog [seconds=300] [lines/s=1000]
 *     10 files written at `lines/s` in all, routed to a syslog+tcp drain whose receiver is down the
 *     whole time; prints logtrain's RSS every minute (the backlog is on disk, not in memory), then
 *     starts the receiver and prints how long until every line arrived, and how many.
 *
 * ENTRY=<script> runs another build (e.g. dist/bundle/logtrain.js, as the image does); the default
 * is the sources.
 */
import { spawn } from "node:child_process"
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePorts } from "../test/helpers/ports.ts"
import { startSink } from "./tools/sink.ts"

const mode = process.argv[2] ?? "throughput"
const root = mkdtempSync(join(tmpdir(), "logtrain-bench-containers-"))
const containers = join(root, "containers")
const state = join(root, "state")
mkdirSync(containers)
mkdirSync(state)
const ID = "feedface".repeat(8)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const line = (i: number) => `2024-01-01T00:00:00.123456789Z stdout F request ${i} handled in 12ms\n`

const container = (i: number) => {
  const dir = join(root, "pods", `bench_app-${i}-5d8f7c-x2x9q_uid`, "app")
  mkdirSync(dir, { recursive: true })
  const file = join(dir, "0.log")
  writeFileSync(file, "")
  symlinkSync(file, join(containers, `app-${i}-5d8f7c-x2x9q_bench_app-${ID}.log`))
  return file
}

const [http, sinkPort] = await freePorts(2)
const sink = await startSink(sinkPort!)
let sinkStopped = false

const startLogtrain = () => {
  const pin = process.env.PIN_CPU
  const entry = process.env.ENTRY ?? join(import.meta.dirname, "../src/programs/logtrain.ts")
  const args = [...(process.env.NODE_FLAGS ?? "").split(" ").filter(Boolean), entry]
  const child = spawn(pin ? "taskset" : process.execPath, pin ? ["-c", pin, process.execPath, ...args] : args, {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: root,
      LISTEN_ADDRESS: "127.0.0.1",
      HTTP_PORT: String(http),
      KUBERNETES: "true",
      KUBERNETES_LOG_PATH: containers,
      STATE_DIR: state,
      ROUTES: JSON.stringify({ "*": [`syslog+tcp://127.0.0.1:${sinkPort}`] }),
      LOG_LEVEL: "error",
      ...(mode === "backlog" ? { DRAIN_RETRY_MAX_DELAY: "5s" } : {})
    },
    stdio: ["ignore", "inherit", "inherit"]
  })
  const pid = child.pid!
  return {
    child,
    cpu: () => {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
      return (Number(stat[11]) + Number(stat[12])) / 100
    },
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024,
    stop: () => {
      child.kill("SIGTERM")
      return new Promise((r) => child.once("exit", r))
    }
  }
}

const ready = async () => {
  while (!(await fetch(`http://127.0.0.1:${http}/readyz`).then((r) => r.ok, () => false))) await sleep(20)
}

try {
  if (mode === "throughput") {
    const total = Number(process.argv[3] ?? 1_000_000)
    const files = Number(process.argv[4] ?? 4)
    const message = "x".repeat(90)
    for (let f = 0; f < files; f++) {
      const file = container(f)
      const per = Math.floor(total / files)
      let chunk = ""
      for (let i = 0; i < per; i++) {
        chunk += `{"log":"${message} ${i}\\n","stream":"stdout","time":"2024-01-01T00:00:00.123456789Z"}\n`
        if (chunk.length > 1 << 20) {
          appendFileSync(file, chunk)
          chunk = ""
        }
      }
      appendFileSync(file, chunk)
    }
    const expected = Math.floor(total / files) * files
    // A checkpoint exists (not the first run), so files without one are read from their start.
    writeFileSync(join(state, "container-logs.json"), JSON.stringify({ version: 1, files: [] }))
    const lt = startLogtrain()
    await ready()
    const cpu0 = lt.cpu()
    let first = 0
    const count = sink.received
    while (count() < expected) {
      if (first === 0 && count() > 0) first = performance.now()
      await sleep(5)
    }
    const seconds = (performance.now() - first) / 1000
    const cpu = lt.cpu() - cpu0
    console.log(`container logs → syslog+tcp: ${expected} lines from ${files} files in ${seconds.toFixed(2)} s = ${Math.round(expected / seconds)} lines/s; logtrain CPU ${cpu.toFixed(2)} s (${(cpu / (expected / 1e6)).toFixed(2)} CPU-s per million)${process.env.PIN_CPU ? ` on core ${process.env.PIN_CPU}` : ""}; peak RSS ${Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${lt.child.pid}/status`, "utf8"))?.[1]) / 1024 | 0} MB`)
    await lt.stop()
  } else if (mode === "scale" || mode === "new-files") {
    const files = Number(process.argv[3] ?? (mode === "scale" ? 2000 : 10_000))
    const seconds = Number(process.argv[4] ?? 20)
    const paths: Array<string> = []
    if (mode === "scale") for (let i = 0; i < files; i++) paths.push(container(i))
    for (const [i, path] of paths.entries()) appendFileSync(path, line(2 * i) + line(2 * i + 1))
    // A checkpoint exists (not the first run), so files without one are read from their start.
    writeFileSync(join(state, "container-logs.json"), JSON.stringify({ version: 1, files: [] }))
    const lt = startLogtrain()
    await ready()
    const started = performance.now()
    const expected = mode === "scale" ? 2 * files : files
    if (mode === "new-files") for (let i = 0; i < files; i++) appendFileSync(container(i), line(i))
    while (sink.received() < expected && performance.now() - started < 120_000) await sleep(20)
    const pickedUp = (performance.now() - started) / 1000
    console.log(`${files} files: all ${sink.received()} of ${expected} lines arrived ${pickedUp.toFixed(2)} s after ${mode === "scale" ? "logtrain was ready" : "the files appeared"}`)
    if (mode === "scale") {
      await sleep(2000)
      const cpu0 = lt.cpu()
      const t0 = performance.now()
      await sleep(seconds * 1000)
      const share = (lt.cpu() - cpu0) / ((performance.now() - t0) / 1000)
      console.log(`${files} quiet files for ${seconds} s: logtrain CPU ${(share * 100).toFixed(1)} % of a core, RSS ${lt.rss().toFixed(0)} MB`)
    }
    await lt.stop()
  } else if (mode === "backlog") {
    const seconds = Number(process.argv[3] ?? 300)
    const rate = Number(process.argv[4] ?? 1000)
    // Nothing listens on the drain's port until the end.
    await sink.stop()
    sinkStopped = true
    const paths = Array.from({ length: 10 }, (_, i) => container(i))
    const lt = startLogtrain()
    await ready()
    let written = 0
    const started = Date.now()
    let nextReport = 0
    while (Date.now() - started < seconds * 1000) {
      const now = new Date().toISOString()
      for (const path of paths) {
        let text = ""
        for (let k = 0; k < rate / 100; k++) text += `${now} stdout F request ${written++} handled in 12ms path=/api/v1/items status=200\n`
        appendFileSync(path, text)
      }
      const elapsed = Date.now() - started
      if (elapsed >= nextReport) {
        console.log(`${Math.round(elapsed / 1000)} s: ${written} lines written, receiver down; logtrain RSS ${lt.rss().toFixed(1)} MB`)
        nextReport += 60_000
      }
      await sleep(Math.max(0, written / rate * 1000 - (Date.now() - started)))
    }
    console.log(`${seconds} s: ${written} lines written; logtrain RSS ${lt.rss().toFixed(1)} MB; the receiver comes up`)
    const up = await startSink(sinkPort!)
    const t0 = performance.now()
    while (up.received() < written && performance.now() - t0 < 600_000) await sleep(100)
    console.log(`all ${up.received()} of ${written} lines arrived ${((performance.now() - t0) / 1000).toFixed(1)} s after the receiver came up; logtrain RSS ${lt.rss().toFixed(1)} MB`)
    await lt.stop()
    await up.stop()
  } else {
    const files = Number(process.argv[3] ?? 52)
    const rate = Number(process.argv[4] ?? 20)
    const seconds = Number(process.argv[5] ?? 30)
    const paths = Array.from({ length: files }, (_, i) => container(i))
    const lt = startLogtrain()
    await ready()
    const samples: Array<number> = []
    let written = 0
    const started = Date.now()
    let tick = 0
    while (Date.now() - started < seconds * 1000) {
      // Each file gets its lines spread over the second, as pods log.
      const now = new Date().toISOString()
      for (const [i, path] of paths.entries()) {
        if ((tick + i) % 10 < rate % 10 || rate >= 10) {
          const n = rate >= 10 ? rate / 10 : 1
          let text = ""
          for (let k = 0; k < n; k++) text += `${now} stdout F request ${written++} handled in 12ms path=/api/v1/items status=200\n`
          appendFileSync(path, text)
        }
      }
      tick++
      if (Date.now() - started > (seconds * 1000) / 2) samples.push(lt.rss())
      await sleep(100)
    }
    const deadline = Date.now() + 10_000
    const delivered = sink.received
    while (delivered() < written && Date.now() < deadline) await sleep(50)
    samples.sort((a, b) => a - b)
    const metrics = await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text())
    const heap = Number(/^nodejs_heap_size_used_bytes (\d+)/m.exec(metrics)?.[1]) / 1024 / 1024
    if (process.env.SNAPSHOT) {
      lt.child.kill("SIGUSR2")
      await sleep(5000)
    }
    console.log(`${files} files × ${rate} lines/s for ${seconds} s: ${written} lines written, ${sink.received()} delivered; logtrain RSS ${samples[Math.floor(samples.length / 2)]!.toFixed(1)} MB (median of the last half), heap used ${heap.toFixed(1)} MB, CPU ${lt.cpu().toFixed(2)} s`)
    await lt.stop()
  }
} finally {
  if (!sinkStopped) await sink.stop()
  rmSync(root, { recursive: true, force: true })
}
