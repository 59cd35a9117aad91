/**
 * `npm run bench`: logtrain side by side with rsyslog and syslog-ng, in the same run, alternating,
 * on this machine; a table of absolute figures and ratios (logtrain ÷ peer), and a JSON file in
 * bench/results/.
 *
 *   npm run bench                          # all scenarios, 1 round
 *   npm run bench -- --rounds 3 --only relay,files --lines 2000000 --reference-seconds 180
 *   npm run bench -- --only files --relays logtrain --logtrain-env MALLOC_ARENA_MAX=2,DRAIN_BUFFER_SIZE=1000   # try a setting
 *   LOGTRAIN_NODE_ARGS="--trace-gc" LOGTRAIN_STDOUT=/tmp/gc.log npm run bench -- --only reference   # V8 flags, output kept
 *   REFERENCE_PROBE="cat /proc/{pid}/smaps_rollup" npm run bench -- --only reference   # a command run on logtrain at the end
 *
 * Scenarios:
 *   relay      N RFC 5424 lines of ~200 bytes, octet-counted, over one TCP connection → the relay's
 *              TCP input → routed by hostname → a syslog TCP output → a sink counting lines.
 *   loggen     the relay scenario with syslog-ng's `loggen` as the sender (`loggen -i -S -P -s 200`,
 *              unthrottled, hostname "localhost"), and nothing pinned: relay, sender and sink share
 *              both cores, as on a node with busy neighbours; what tells relays apart there is CPU
 *              per line.
 *   files      52 CRI-format container log files written concurrently (one rotation by rename
 *              each, midway) → the relay (logtrain's container input; rsyslog imfile; syslog-ng
 *              wildcard-file) → the sink.
 *   drains     logtrain alone: the relay's lines (--drain-lines of them) into each kind of drain in
 *              turn — syslog+tcp, otlp+http (protobuf, gzip), loki+http (JSON, gzip), http (JSON
 *              arrays, for comparison) — each
 *              received by a process on core 1 that reads every record and counts distinct
 *              line numbers (bench/tools/count-distinct-sink.ts); lines/s beside syslog+tcp's.
 *              And es+http (batches of 1000) into the Elasticsearch stand-in in its own process
 *              (bench/tools/elasticsearch-sink.ts: Elasticsearch 8's whole answers), counting
 *              documents indexed.
 *   stress     logtrain alone, not run unless named: its memory against the 128Mi limit with 10
 *              drains down, 4 TCP senders and 52 files at full speed, 200 B and 16 KB lines
 *              (bench/stress.ts); --stress-seconds (180).
 *   reference  logtrain alone (the original's published claim): the fake kube-apiserver with 1500
 *              deployments and 52 pods on this node, 52 files written at 20 lines/s each, syslog
 *              TCP/UDP on, routes to a syslog+tcp sink: average and peak RSS, CPU % of one core
 *              (over the whole run, and after its first 30 s), and each line's time from written
 *              to delivered (percentiles). With the memory budget and heap logtrain takes from
 *              the DaemonSet's 128Mi limit (MEMORY_LIMIT, as the stress scenario);
 *              --reference-limit none runs it without a container limit;
 *              --reference-writes spread writes each file at its own moment in the 100 ms (as a
 *              node's containers do) instead of all at once.
 *
 * Both relay scenarios also run the calibration relay (bench/tools/calibration-relay.ts: the least a
 * Node relay can do, no Effect), so the report shows logtrain ÷ that ceiling beside logtrain ÷ rsyslog.
 *
 * The relay runs alone on core 0 (taskset); the load generator and the sink on core 1. Peers are
 * configured not to lose lines (flow control; blocking queues), so lost lines are a finding.
 * logtrain runs from the bundle (npm run build) as the container image does: ENTRY=sources runs
 * src/programs/logtrain.ts instead, ENTRY=<file> another build (e.g. an older commit's bundle).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { open } from "node:fs/promises"
import * as Net from "node:net"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import * as MemoryBudget from "../src/layers/MemoryBudget.ts"
import { parseBytes } from "../src/layers/MemoryLimit.ts"
import * as FakeKubeApi from "../test/helpers/FakeKubeApi.ts"
import * as Peers from "../test/helpers/Peers.ts"
import { privatePorts } from "../test/helpers/ports.ts"
import * as Sink from "./tools/sink.ts"

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "1" },
    only: { type: "string", default: "relay,loggen,files,drains,reference" },
    lines: { type: "string", default: "2000000" },
    "loggen-lines": { type: "string", default: "1000000" },
    "drain-lines": { type: "string", default: "1000000" },
    "file-lines": { type: "string", default: "10000" },
    "reference-seconds": { type: "string", default: "120" },
    /** The container limit the reference workload runs under (its MEMORY_LIMIT): 128Mi, as the DaemonSet; `none`. */
    "reference-limit": { type: "string", default: "128Mi" },
    /**
     * How the reference workload's writes fall: `together` (all 52 files every 100 ms, at once) or
     * `spread` (each file every 100 ms at its own moment, as a node's containers write), or `none`
     * (nothing written: the floor — what the kube watch, metrics, timers and the rest cost idle).
     */
    "reference-writes": { type: "string", default: "together" },
    "stress-seconds": { type: "string", default: "180" },
    /** Environment for logtrain, `NAME=value,NAME=value`: by default the container image's. */
    "logtrain-env": { type: "string", default: "MALLOC_ARENA_MAX=2" },
    /** Which relays run (e.g. only logtrain, to try a setting quickly). */
    relays: { type: "string", default: "logtrain,calibration,rsyslog,syslog-ng" }
  }
})
const rounds = Number(args.rounds)
const extraEnv = Object.fromEntries(args["logtrain-env"].split(",").filter((kv) => kv.includes("=")).map((kv) => {
  const at = kv.indexOf("=")
  return [kv.slice(0, at), kv.slice(at + 1)]
}))
const only = new Set(args.only.split(","))
const root = join(import.meta.dirname, "..")
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)))
const twoCores = cpus().length >= 2
const RELAY_CORE = "0"
if (twoCores) execFileSync("taskset", ["-a", "-p", "-c", "1", String(process.pid)], { stdio: "ignore" })

const logtrainEntry = process.env.ENTRY === "sources"
  ? join(root, "src/programs/logtrain.ts")
  : process.env.ENTRY ?? join(root, "dist/bundle/logtrain.js")
if (!existsSync(logtrainEntry)) {
  console.log("building the bundle (npm run build) …")
  execFileSync(process.execPath, [join(root, "scripts/build.ts")], { stdio: "inherit" })
}

// ---------------------------------------------------------------------------------------------
// Measuring a process

const stat = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}
const status = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024

interface Relay {
  readonly name: string
  readonly pid: number
  stop(): Promise<void>
  log(): string
}

/** The sink: a process on core 1 counting newline-terminated lines. */
const startSink = (port: number) => Sink.startSink(port, twoCores ? "1" : undefined)

/** Both cores: the unpinned scenario's relays, sender and sink. */
const ALL_CORES = "0,1"

const pinned = (command: string, commandArgs: ReadonlyArray<string>, cores = RELAY_CORE) =>
  twoCores ? { command: "taskset", args: ["-c", cores, command, ...commandArgs] } : { command, args: [...commandArgs] }

const compileCache = join(tmpdir(), "logtrain-bench-compile-cache")

const startLogtrain = async (env: Record<string, string>, httpPort: number, cores = RELAY_CORE): Promise<Relay> => {
  // LOGTRAIN_NODE_ARGS: V8 flags Node refuses in NODE_OPTIONS (e.g. --single-threaded-gc), given on its command line.
  const nodeArgs = (process.env.LOGTRAIN_NODE_ARGS ?? "").split(" ").filter(Boolean)
  const { args: a, command } = pinned(process.execPath, [...nodeArgs, logtrainEntry], cores)
  let output = ""
  const child: ChildProcess = spawn(command, a, {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: tmpdir(),
      LISTEN_ADDRESS: "127.0.0.1",
      HTTP_PORT: String(httpPort),
      LOG_LEVEL: "warn",
      // The container image's V8 settings (Dockerfile); LOGTRAIN_NODE_OPTIONS="…" npm run bench tries others.
      NODE_OPTIONS: process.env.LOGTRAIN_NODE_OPTIONS ?? "--max-semi-space-size=4",
      // As the image: Node's compile cache, kept across starts (see the reference scenario).
      NODE_COMPILE_CACHE: compileCache,
      // --logtrain-env last: it overrides a scenario's own settings (e.g. the files scenario's
      // DRAIN_WHEN_FULL=block), which is what trying a setting means.
      ...env,
      ...extraEnv
    },
    // LOGTRAIN_STDOUT=file keeps what logtrain prints on stdout (e.g. V8's --trace-gc), appended.
    stdio: ["ignore", process.env.LOGTRAIN_STDOUT === undefined ? "ignore" : openSync(process.env.LOGTRAIN_STDOUT, "a"), "pipe"]
  })
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()))
  const exited = new Promise<void>((r) => child.once("exit", () => r()))
  const deadline = Date.now() + 30_000
  while (!(await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`logtrain did not start:\n${output}`)
    await sleep(50)
  }
  // taskset execs the command: its pid is the relay's.
  const pid = child.pid!
  return {
    name: "logtrain",
    pid,
    log: () => output,
    stop: async () => {
      child.kill("SIGTERM")
      await exited
    }
  }
}

/** rsyslog and syslog-ng via the test helpers, then moved onto the relay core. */
const peerRelay = (name: string, peer: Peers.Peer, cores = RELAY_CORE): Relay => {
  if (twoCores) execFileSync("taskset", ["-a", "-p", "-c", cores, String(peer.pid)], { stdio: "ignore" })
  return { name, pid: peer.pid, log: peer.log, stop: peer.stop }
}

/** The calibration relay (bench/tools/calibration-relay.ts): the least a Node relay can do. */
const startCalibration = async (listenPort: number, sinkPort: number, hostname: string, cores = RELAY_CORE): Promise<Relay> => {
  const { args: a, command } = pinned(process.execPath, [join(import.meta.dirname, "tools/calibration-relay.ts"), String(listenPort), String(sinkPort), hostname], cores)
  let output = ""
  const child = spawn(command, a, { stdio: ["pipe", "pipe", "pipe"] })
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()))
  const exited = new Promise<void>((r) => child.once("exit", () => r()))
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve())
    child.once("exit", () => reject(new Error(`the calibration relay did not start:\n${output}`)))
  })
  return {
    name: "calibration",
    pid: child.pid!,
    log: () => output,
    stop: async () => {
      child.stdin!.end()
      await exited
    }
  }
}

interface Result {
  readonly scenario: string
  readonly relay: string
  readonly lines: number
  readonly received: number
  readonly lost: number
  readonly seconds: number
  readonly linesPerSecond: number
  readonly cpuSeconds: number
  readonly cpuSecondsPerMillion: number
  readonly peakRssMB: number
  readonly error?: string
}

/** Waits until the sink has `expected` lines or nothing has arrived for `quietMs`; measures the relay meanwhile. */
const measure = async (scenario: string, relay: Relay, sink: { received: () => number }, expected: number, run: () => Promise<void>, quietMs = 5000) => {
  const cpu0 = stat(relay.pid)
  const base = sink.received()
  let first = 0
  let last = performance.now()
  let lastCount = base
  const started = performance.now()
  const sending = run()
  while (sink.received() - base < expected) {
    const now = performance.now()
    const count = sink.received()
    if (first === 0 && count > base) first = now
    if (count !== lastCount) {
      lastCount = count
      last = now
    } else if (now - last > quietMs && now - started > quietMs) break
    await sleep(5)
  }
  await sending
  const end = performance.now()
  const received = sink.received() - base
  const seconds = (end - (first || started)) / 1000
  const cpuSeconds = stat(relay.pid) - cpu0
  const result: Result = {
    scenario,
    relay: relay.name,
    lines: expected,
    received,
    lost: expected - received,
    seconds: Number(seconds.toFixed(3)),
    linesPerSecond: Math.round(received / seconds),
    cpuSeconds: Number(cpuSeconds.toFixed(2)),
    cpuSecondsPerMillion: Number((cpuSeconds / (received / 1e6)).toFixed(2)),
    peakRssMB: Number(status(relay.pid, "VmHWM").toFixed(1))
  }
  console.log(`  ${relay.name.padEnd(9)} ${result.linesPerSecond.toLocaleString("en").padStart(9)} lines/s  ${result.cpuSecondsPerMillion.toFixed(2)} CPU-s/M  peak RSS ${result.peakRssMB} MB  lost ${result.lost}`)
  // A run that lost lines says why, if its relay did.
  if (result.lost > 0) console.log(`    its log ends:\n${relay.log().split("\n").slice(-12).map((l) => `      ${l}`).join("\n")}`)
  return result
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: TCP relay

const HOST = "bench.host"
const relayLine = (i: number) => {
  const line = `<134>1 2026-01-01T00:00:00.000000Z ${HOST} app 1234 - - ${"x".repeat(120)} line ${String(i).padStart(9, "0")}`
  return `${Buffer.byteLength(line)} ${line}`
}

/** Lines sent per write. */
const SEND_BLOCK = 10_000
/**
 * A block of SEND_BLOCK lines as bytes; each block sent is a copy with the line numbers written in.
 * (Building each line as a string, joined and encoded per write, cost the sender ~1 µs a line on
 * core 1, where the sink also runs: that capped every relay, the calibration relay included.)
 */
let sendTemplate: Buffer | undefined
const relayBlock = (sent: number, n: number): Buffer => {
  sendTemplate ??= Buffer.from(Array.from({ length: SEND_BLOCK }, (_, i) => relayLine(i)).join(""))
  // Every line is as long as the others (its number has 9 digits), ending in its number.
  const frame = sendTemplate.length / SEND_BLOCK
  const out = Buffer.allocUnsafe(frame * n)
  sendTemplate.copy(out, 0, 0, frame * n)
  for (let k = 0; k < n; k++) {
    let number = sent + k
    for (let at = (k + 1) * frame - 1; at >= (k + 1) * frame - 9; at--) {
      out[at] = 48 + (number % 10)
      number = Math.floor(number / 10)
    }
  }
  return out
}
// The blocks are the lines relayLine makes, byte for byte.
if (relayBlock(123_456, 3).toString() !== relayLine(123_456) + relayLine(123_457) + relayLine(123_458)) {
  throw new Error("relayBlock differs from relayLine")
}

const sendRelay = async (port: number, total: number) => {
  const socket = await new Promise<Net.Socket>((resolve, reject) => {
    const s = Net.createConnection({ host: "127.0.0.1", port }, () => resolve(s))
    s.once("error", reject)
  })
  for (let sent = 0; sent < total; sent += SEND_BLOCK) {
    // Each block yields to the event loop, drained or not: a write the kernel takes whole returns
    // true, and a sender that never yields starves `measure`'s clock (a run "at 54M lines/s").
    if (!socket.write(relayBlock(sent, Math.min(SEND_BLOCK, total - sent)))) await new Promise((r) => socket.once("drain", r))
    else await new Promise((r) => setImmediate(r))
  }
  await new Promise<void>((r) => socket.end(() => r()))
}

/**
 * One relay between a sender and the sink, lines of `host` routed through it: `pinnedRun`, the relay
 * alone on core 0 (sender and sink on core 1); else relay, sender and sink all on both cores.
 */
const relayThrough = async (
  scenario: string,
  relayName: string,
  host: string,
  total: number,
  send: (port: number, total: number) => Promise<void>,
  pinnedRun: boolean
): Promise<Result> => {
  const cores = pinnedRun ? RELAY_CORE : ALL_CORES
  const [http, input, sinkPort] = await privatePorts(3)
  const sink = pinnedRun ? await startSink(sinkPort!) : await Sink.startSink(sinkPort!, twoCores ? ALL_CORES : undefined)
  let relay: Relay | undefined
  try {
    if (relayName === "logtrain") {
      relay = await startLogtrain({
        SYSLOG_TCP: "true",
        SYSLOG_TCP_PORT: String(input),
        DRAIN_WHEN_FULL: "block",
        ROUTES: JSON.stringify({ [host]: [`syslog+tcp://127.0.0.1:${sinkPort}`] })
      }, http!, cores)
    } else if (relayName === "calibration") {
      relay = await startCalibration(input!, sinkPort!, host, cores)
    } else if (relayName === "rsyslog") {
      relay = peerRelay("rsyslog", await Peers.rsyslog(() => `
main_queue(queue.type="LinkedList" queue.size="200000" queue.timeoutEnqueue="3600000")
module(load="imtcp")
input(type="imtcp" port="${input}" address="127.0.0.1")
template(name="out" type="string" string="<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% %MSGID% %STRUCTURED-DATA% %msg%\\n")
if $hostname == "${host}" then {
  action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="tcp" template="out"
         queue.type="LinkedList" queue.size="200000" queue.timeoutEnqueue="3600000" action.resumeRetryCount="-1")
}
`, { tcp: [input!] }), cores)
    } else {
      relay = peerRelay("syslog-ng", await Peers.syslogNg(() => `
options { keep-hostname(yes); log-fifo-size(200000); };
source s_in { syslog(ip("127.0.0.1") port(${input}) transport("tcp") log-iw-size(100000) max-connections(10)); };
destination d_out { network("127.0.0.1" port(${sinkPort}) transport("tcp") template("<\${PRI}>1 \${ISODATE} \${HOST} \${PROGRAM} \${PID} \${MSGID} \${SDATA} \${MESSAGE}\\n")); };
filter f_host { host("${host}" type(string)); };
log { source(s_in); filter(f_host); destination(d_out); flags(flow-control); };
`, { tcp: [input!] }), cores)
    }
    return await measure(scenario, relay, sink, total, () => send(input!, total))
  } finally {
    await relay?.stop()
    await sink.stop()
  }
}

const relayScenario = (relayName: string) => relayThrough("relay", relayName, HOST, Number(args.lines), sendRelay, true)

// ---------------------------------------------------------------------------------------------
// Scenario 1b: TCP relay, syslog-ng's loggen as the sender, nothing pinned

const loggenRoot = join(root, ".peers/syslog-ng/root")

/** Sends `total` lines with loggen (octet-counted RFC 5424, 200 bytes, as fast as it can) on both cores. */
const sendLoggen = async (port: number, total: number) => {
  const binary = join(loggenRoot, "usr/bin/loggen")
  if (!existsSync(binary)) throw new Error("loggen is not installed: run `bash scripts/install-peers.sh`")
  const { args: a, command } = pinned(binary, ["-i", "-S", "-P", "-s", "200", "-r", "100000000", "-I", "3600", "-Q", "-n", String(total), "127.0.0.1", String(port)], ALL_CORES)
  const child = spawn(command, a, {
    stdio: ["ignore", "ignore", "pipe"],
    env: {
      PATH: process.env.PATH ?? "",
      // Its plugins (the socket plugin) and the libraries install-peers.sh unpacked beside it.
      SYSLOGNG_PREFIX: join(loggenRoot, "usr"),
      LD_LIBRARY_PATH: ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "usr/lib/syslog-ng"].map((d) => join(loggenRoot, d)).join(":")
    }
  })
  let output = ""
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()))
  const code = await new Promise<number | null>((r) => child.once("exit", r))
  if (code !== 0) throw new Error(`loggen exited with ${code}: ${output.trim().split("\n").slice(-3).join(" / ")}`)
}

const loggenScenario = (relayName: string) => relayThrough("loggen", relayName, "localhost", Number(args["loggen-lines"]), sendLoggen, false)

// ---------------------------------------------------------------------------------------------
// Scenario 2: file tail

const ID = "cafe".repeat(16)
const FILES = 52

/** Writes `perFile` CRI lines to each file, concurrently, renaming each file once midway. */
const writeFiles = async (paths: ReadonlyArray<string>, perFile: number) => {
  const block = 500
  await Promise.all(paths.map(async (path, f) => {
    let handle = await open(path, "a")
    for (let i = 0; i < perFile; i += block) {
      if (i === Math.floor(perFile / 2 / block) * block) {
        // Rotation by rename, as the kubelet does: the old file stays, a new one takes its name.
        await handle.close()
        renameSync(path, `${path}.1`)
        handle = await open(path, "a")
      }
      let chunk = ""
      for (let n = i; n < Math.min(perFile, i + block); n++) {
        chunk += `2026-01-01T00:00:00.123456789Z stdout F file ${f} line ${String(n).padStart(7, "0")} ${"y".repeat(100)}\n`
      }
      await handle.write(chunk)
      await sleep(0)
    }
    await handle.close()
  }))
}

const filesScenario = async (relayName: string): Promise<Result> => {
  const perFile = Number(args["file-lines"])
  const total = perFile * FILES
  const dir = mkdtempSync(join(tmpdir(), "logtrain-bench-files-"))
  const containers = join(dir, "containers")
  const state = join(dir, "state")
  mkdirSync(containers)
  mkdirSync(state)
  const paths = Array.from({ length: FILES }, (_, i) => {
    const podDir = join(dir, "pods", `bench_app-${i}_uid`, "app")
    mkdirSync(podDir, { recursive: true })
    const file = join(podDir, "0.log")
    writeFileSync(file, "")
    return file
  })
  // The kubelet's layout for logtrain; the peers follow the files themselves (no symlinks to chase).
  paths.forEach((file, i) => symlinkSync(file, join(containers, `app-${i}-5d8f7c-x2x9q_bench_app-${ID}.log`)))
  const [http, sinkPort] = await privatePorts(2)
  const sink = await startSink(sinkPort!)
  let relay: Relay | undefined
  try {
    if (relayName === "logtrain") {
      // Not the first run: files with no checkpoint are read from their start.
      writeFileSync(join(state, "container-logs.json"), JSON.stringify({ version: 1, files: [] }))
      relay = await startLogtrain({
        KUBERNETES: "true",
        KUBERNETES_LOG_PATH: containers,
        STATE_DIR: state,
        SYSLOG_TCP: "false",
        SYSLOG_UDP: "false",
        DRAIN_WHEN_FULL: "block",
        ROUTES: JSON.stringify({ "*": [`syslog+tcp://127.0.0.1:${sinkPort}`] })
      }, http!)
    } else if (relayName === "rsyslog") {
      relay = peerRelay("rsyslog", await Peers.rsyslog(() => `
main_queue(queue.type="LinkedList" queue.size="200000" queue.timeoutEnqueue="3600000")
module(load="imfile" mode="inotify")
input(type="imfile" file="${join(dir, "pods")}/*/app/0.log" tag="app" freshStartTail="off" reopenOnTruncate="on")
template(name="out" type="string" string="<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% - - - %msg%\\n")
action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="tcp" template="out"
       queue.type="LinkedList" queue.size="200000" queue.timeoutEnqueue="3600000" action.resumeRetryCount="-1")
`, {}))
    } else {
      relay = peerRelay("syslog-ng", await Peers.syslogNg(() => `
options { keep-hostname(yes); log-fifo-size(200000); };
source s_files { wildcard-file(base-dir("${join(dir, "pods")}") filename-pattern("0.log") recursive(yes) flags(no-parse) follow-freq(0.1) log-iw-size(100000)); };
destination d_out { network("127.0.0.1" port(${sinkPort}) transport("tcp") template("<\${PRI}>1 \${ISODATE} \${HOST} app - - - \${MESSAGE}\\n")); };
log { source(s_files); destination(d_out); flags(flow-control); };
`, {}))
    }
    await sleep(500)
    return await measure("files", relay, sink, total, () => writeFiles(paths, perFile), 10_000)
  } finally {
    await relay?.stop()
    await sink.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

const mb = (bytes: number) => Number((bytes / 1024 / 1024).toFixed(1))

/**
 * Where a logtrain's resident memory is, in MB: the kernel's split (anonymous: heaps; file: code
 * mapped from node and libraries) and V8's (heap in use and reserved, memory outside the heap).
 */
const memoryBreakdown = async (pid: number, httpPort: number): Promise<Record<string, number>> => {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8")
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? Number.NaN) * 1024
  const metrics = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text(), () => "")
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? Number.NaN)
  return {
    rss: mb(kb("Rss")),
    anonymous: mb(kb("Anonymous")),
    fileBacked: mb(kb("Rss") - kb("Anonymous")),
    heapUsed: mb(gauge("nodejs_heap_size_used_bytes")),
    heapTotal: mb(gauge("nodejs_heap_size_total_bytes")),
    external: mb(gauge("nodejs_external_memory_bytes"))
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: the reference workload (logtrain alone)

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN

/**
 * The reference workload's sink, in this process (about a thousand lines a second): counts lines
 * and how long each took from being written to arriving — the time a line's RFC 5424 TIMESTAMP
 * carries is the one the writer put at its start (milliseconds), so this is pick-up and delivery.
 */
const latencySink = async (port: number) => {
  let received = 0
  const latencies: Array<number> = []
  let rest = ""
  const server = Net.createServer((socket) => {
    socket.on("data", (data: Buffer) => {
      const now = Date.now()
      const lines = (rest + data.toString("latin1")).split("\n")
      rest = lines.pop()!
      for (const line of lines) {
        received++
        // <PRI>1 TIMESTAMP …
        const at = line.indexOf(" ") + 1
        const time = Date.parse(line.slice(at, line.indexOf(" ", at)))
        if (!Number.isNaN(time)) latencies.push(now - time)
      }
    })
  })
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()))
  return {
    received: () => received,
    latency: () => {
      const sorted = latencies.toSorted((a, b) => a - b)
      return { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? Number.NaN }
    },
    stop: () => new Promise<void>((r) => server.close(() => r()))
  }
}

/** Seconds of the reference workload's start that its CPU is also reported without. */
const WARM_UP = 30

const referenceScenario = async () => {
  const seconds = Number(args["reference-seconds"])
  const fake = await FakeKubeApi.listen({ bookmarkIntervalMs: 5000 })
  const dir = mkdtempSync(join(tmpdir(), "logtrain-bench-reference-"))
  const containers = join(dir, "containers")
  mkdirSync(containers)
  for (let i = 0; i < 1500; i++) {
    fake.create("deployments", {
      name: `app-${i}`,
      namespace: `space-${i % 40}`,
      padding: 6000,
      ...(i < FILES ? { annotations: { "logtrain.akkeris.io/drains": "SINK" } } : {})
    })
  }
  const [http, tcp, udp, sinkPort] = await privatePorts(4)
  for (let i = 0; i < FILES; i++) {
    const ns = `space-${i % 40}`
    fake.create("replicasets", { name: `app-${i}-5d8f7c`, namespace: ns, owner: { kind: "Deployment", name: `app-${i}` } })
    fake.create("pods", { name: `app-${i}-5d8f7c-x2x9q`, namespace: ns, nodeName: "node-1", owner: { kind: "ReplicaSet", name: `app-${i}-5d8f7c` }, padding: 6000 })
  }
  // The drain URL needs the sink's port: set the annotations now.
  for (let i = 0; i < FILES; i++) {
    fake.annotate("deployments", `space-${i % 40}`, `app-${i}`, { "logtrain.akkeris.io/drains": `syslog+tcp://127.0.0.1:${sinkPort}` })
  }
  const paths = Array.from({ length: FILES }, (_, i) => {
    const podDir = join(dir, "pods", `space-${i % 40}_app-${i}-5d8f7c-x2x9q_uid`, "app")
    mkdirSync(podDir, { recursive: true })
    const file = join(podDir, "0.log")
    writeFileSync(file, "")
    symlinkSync(file, join(containers, `app-${i}-5d8f7c-x2x9q_space-${i % 40}_app-${ID}.log`))
    return file
  })
  const sink = await latencySink(sinkPort!)
  // The budget logtrain takes from a container limit (MemoryBudget.defaultLimit), given as
  // MEMORY_LIMIT, since this machine runs it in none: it sizes V8's heap and what drains hold.
  const containerLimit = args["reference-limit"] === "none" ? undefined : parseBytes(args["reference-limit"])
  const memoryLimit = containerLimit === undefined ? {} : { MEMORY_LIMIT: String(MemoryBudget.defaultLimit(containerLimit)) }
  console.log(`  ${containerLimit === undefined ? "no container limit" : `as in a ${args["reference-limit"]} container: MEMORY_LIMIT ${(MemoryBudget.defaultLimit(containerLimit) / 1048576).toFixed(1)} MiB`}`)
  const env = {
    ...memoryLimit,
    KUBERNETES: "true",
    KUBERNETES_DATASOURCE: "true",
    NODE_NAME: "node-1",
    KUBERNETES_LOG_PATH: containers,
    SYSLOG_TCP: "true",
    SYSLOG_UDP: "true",
    SYSLOG_TCP_PORT: String(tcp),
    SYSLOG_UDP_PORT: String(udp),
    KUBECONFIG: fake.kubeconfig
  }
  // A DaemonSet's logtrain has started on its node before (the compile cache is on the host):
  // one start and stop first, so the measured one finds the cache as it would.
  await (await startLogtrain({ ...env, STATE_DIR: join(dir, "warm-up") }, http!)).stop()
  const relay = await startLogtrain({ ...env, STATE_DIR: join(dir, "state") }, http!)
  try {
    const samples: Array<number> = []
    const cpu0 = stat(relay.pid)
    const start = Date.now()
    // Also after the first WARM_UP seconds (V8 still compiling the hot paths, the first reclaim):
    // what a DaemonSet's logtrain pays once it has run a while. The target is the whole run's.
    let warm: { readonly cpu: number; readonly at: number } | undefined
    let written = 0
    const spread = args["reference-writes"] === "spread"
    const append = (path: string) => {
      const now = new Date().toISOString()
      writeFileSync(path, `${now} stdout F request ${written} served in 12ms ${"z".repeat(80)}\n${now} stderr F warning ${written}\n`, { flag: "a" })
      written += 2
    }
    while (Date.now() - start < seconds * 1000) {
      // 20 lines/s per file: 2 lines each 100 ms — all files at once, or each at its own moment.
      const round = Date.now()
      for (let i = 0; i < FILES && args["reference-writes"] !== "none"; i++) {
        if (spread) await sleep(round + (i * 100) / FILES - Date.now())
        append(paths[i]!)
      }
      samples.push(status(relay.pid, "VmRSS"))
      if (warm === undefined && Date.now() - start >= WARM_UP * 1000 && seconds > 2 * WARM_UP) warm = { cpu: stat(relay.pid), at: Date.now() }
      await sleep(spread ? round + 100 - Date.now() : 100)
    }
    const end = Date.now()
    const cpuEnd = stat(relay.pid)
    const cpu = cpuEnd - cpu0
    await sleep(2000)
    if (process.env.REFERENCE_PROBE) {
      console.log(execFileSync("sh", ["-c", process.env.REFERENCE_PROBE.replaceAll("{pid}", String(relay.pid))], { encoding: "utf8" }))
    }
    const breakdown = await memoryBreakdown(relay.pid, http!)
    const result = {
      scenario: "reference",
      relay: "logtrain",
      seconds,
      containerLimit: args["reference-limit"],
      writes: args["reference-writes"],
      linesWritten: written,
      received: sink.received(),
      averageRssMB: Number((samples.reduce((a, b) => a + b, 0) / samples.length).toFixed(1)),
      peakRssMB: Number(status(relay.pid, "VmHWM").toFixed(1)),
      cpuPercentOfOneCore: Number((cpu / seconds * 100).toFixed(1)),
      /** The same, after the first WARM_UP seconds (runs of more than twice that only). */
      cpuPercentAfterWarmUp: warm === undefined ? undefined : Number(((cpuEnd - warm.cpu) / ((end - warm.at) / 1000) * 100).toFixed(1)),
      /** From written (the time at the line's start) to arriving at the sink, in ms. */
      latencyMs: sink.latency(),
      memoryAtEndMB: breakdown
    }
    console.log(`  logtrain  ${result.linesWritten} lines written, ${result.received} delivered; RSS average ${result.averageRssMB} MB, peak ${result.peakRssMB} MB; CPU ${result.cpuPercentOfOneCore}% of one core${result.cpuPercentAfterWarmUp === undefined ? "" : ` (${result.cpuPercentAfterWarmUp}% after the first ${WARM_UP} s)`}`)
    console.log(`  written to delivered (ms): ${Object.entries(result.latencyMs).map(([k, v]) => `${k} ${v}`).join(", ")}`)
    console.log(`  at the end (MB): ${Object.entries(breakdown).map(([k, v]) => `${k} ${v}`).join(", ")}`)
    console.log("  targets (the original's claim): peak ≤ 64 MB, average ≤ 59 MB, CPU ≤ 5%")
    return result
  } finally {
    await relay.stop()
    await sink.stop()
    await fake.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario 4: drains

const DRAIN_KINDS = ["syslog+tcp", "otlp+http", "loki+http", "http", "es+http"] as const

const drainScenario = async (kind: string): Promise<Result> => {
  const total = Number(args["drain-lines"])
  const [http, input, sinkPort] = await privatePorts(3)
  const core = twoCores ? "1" : undefined
  const sink = kind === "es+http"
    ? await Sink.startSink(sinkPort!, core, undefined, "elasticsearch-sink.ts")
    : await Sink.startSink(sinkPort!, core, {
      kind: kind === "syslog+tcp" ? "tcp" : kind === "otlp+http" ? "otlp" : kind === "loki+http" ? "loki" : "json",
      lines: total
    })
  const url = kind === "es+http" ? `es+http://elastic:bench@127.0.0.1:${sinkPort}?index=bench` : `${kind}://127.0.0.1:${sinkPort}`
  let relay: Relay | undefined
  try {
    relay = await startLogtrain({
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(input),
      DRAIN_WHEN_FULL: "block",
      ROUTES: JSON.stringify({ [HOST]: [url] })
    }, http!)
    const result = await measure("drains", { ...relay, name: kind }, sink, total, () => sendRelay(input!, total))
    return result
  } finally {
    await relay?.stop()
    await sink.stop()
  }
}

// ---------------------------------------------------------------------------------------------

const relays = args.relays.split(",")
const results: Array<Result> = []
const unavailable: Array<string> = []

const attempt = async (scenario: string, relay: string, run: (relay: string) => Promise<Result>) => {
  try {
    results.push(await run(relay))
  } catch (error) {
    const message = (error as Error).message.split("\n").slice(0, 6).join("\n    ")
    console.log(`  ${relay.padEnd(9)} could not run: ${message}`)
    unavailable.push(`${scenario}/${relay}: ${message.split("\n")[0]}`)
  }
}

console.log(`node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? "?"}); relay on core ${twoCores ? RELAY_CORE : "any"}; logtrain: ${logtrainEntry.replace(`${root}/`, "")}`)
const titles: Record<string, string> = {
  relay: `TCP relay: ${Number(args.lines).toLocaleString("en")} lines, the relay alone on core ${RELAY_CORE}`,
  loggen: `TCP relay, loggen as the sender: ${Number(args["loggen-lines"]).toLocaleString("en")} lines, nothing pinned`,
  files: `file tail: ${FILES} files × ${args["file-lines"]} lines`
}
for (const [scenario, run] of [["relay", relayScenario], ["loggen", loggenScenario], ["files", filesScenario]] as const) {
  if (!only.has(scenario)) continue
  console.log(`\n${titles[scenario]}`)
  // The calibration relay takes part in the relay scenarios only (it reads no files).
  const these = scenario === "files" ? relays.filter((r) => r !== "calibration") : relays
  for (let round = 0; round < rounds; round++) {
    // Alternating: each round in the other order, so drift in the machine hits all alike.
    for (const relay of round % 2 === 0 ? these : these.toReversed()) await attempt(scenario, relay, run)
  }
}
if (only.has("drains")) {
  console.log(`\ndrains: ${Number(args["drain-lines"]).toLocaleString("en")} lines over TCP into each kind of drain (logtrain alone)`)
  for (let round = 0; round < rounds; round++) {
    for (const kind of round % 2 === 0 ? DRAIN_KINDS : DRAIN_KINDS.toReversed()) await attempt("drains", kind, drainScenario)
  }
}
const reference = only.has("reference")
  ? await (console.log(`\nreference workload: ${args["reference-seconds"]} s`), referenceScenario())
  : undefined

let stress: Awaited<ReturnType<typeof import("./stress.ts").stressScenario>> | undefined
if (only.has("stress")) {
  console.log(`\nstress: 10 drains down, 4 TCP senders and 52 files at full speed, 200 B and 16 KB lines`)
  const { stressScenario } = await import("./stress.ts")
  stress = await stressScenario({ startLogtrain, sinkCore: twoCores ? "1" : undefined }, Number(args["stress-seconds"]))
}

const median = (xs: ReadonlyArray<number>) => {
  const s = xs.toSorted((a, b) => a - b)
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const summary: Array<Record<string, string | number>> = []
for (const scenario of ["relay", "loggen", "files"]) {
  const of = (relay: string) => results.filter((r) => r.scenario === scenario && r.relay === relay)
  const ours = of("logtrain")
  if (ours.length === 0) continue
  const figures = (rs: ReadonlyArray<Result>) => ({
    linesPerSecond: Math.round(median(rs.map((r) => r.linesPerSecond))),
    cpuSecondsPerMillion: Number(median(rs.map((r) => r.cpuSecondsPerMillion)).toFixed(2)),
    peakRssMB: Number(median(rs.map((r) => r.peakRssMB)).toFixed(1)),
    lost: Math.max(...rs.map((r) => r.lost))
  })
  const mine = figures(ours)
  for (const peer of ["calibration", "rsyslog", "syslog-ng"]) {
    const theirs = of(peer)
    if (theirs.length === 0) continue
    const p = figures(theirs)
    summary.push({
      scenario,
      peer,
      "lines/s logtrain": mine.linesPerSecond,
      "lines/s peer": p.linesPerSecond,
      "ratio lines/s": Number((mine.linesPerSecond / p.linesPerSecond).toFixed(2)),
      "CPU-s/M ratio": Number((mine.cpuSecondsPerMillion / p.cpuSecondsPerMillion).toFixed(2)),
      "peak RSS MB logtrain": mine.peakRssMB,
      "peak RSS MB peer": p.peakRssMB,
      "RSS ratio": Number((mine.peakRssMB / p.peakRssMB).toFixed(2)),
      "lost logtrain": mine.lost,
      "lost peer": p.lost
    })
  }
}
console.log("\nratios are logtrain ÷ peer (lines/s: above 1 is faster; CPU and RSS: below 1 is leaner); calibration: the least a Node relay can do")
console.table(summary)
// Every relay's own figures (medians), CPU per line first: what a node with busy neighbours pays.
const relayTable = ["relay", "loggen", "files"].flatMap((scenario) =>
  relays.flatMap((relay) => {
    const rs = results.filter((r) => r.scenario === scenario && r.relay === relay)
    if (rs.length === 0) return []
    const cpu = rs.map((r) => r.cpuSecondsPerMillion)
    const rate = rs.map((r) => r.linesPerSecond)
    return [{
      scenario,
      relay,
      "CPU-s/M": Number(median(cpu).toFixed(2)),
      "CPU-s/M range": `${Math.min(...cpu).toFixed(2)}-${Math.max(...cpu).toFixed(2)}`,
      "lines/s": Math.round(median(rate)),
      "lines/s range": `${Math.min(...rate)}-${Math.max(...rate)}`,
      lost: Math.max(...rs.map((r) => r.lost))
    }]
  })
)
if (relayTable.length > 0) {
  console.log("\nevery relay (medians and ranges over the rounds)")
  console.table(relayTable)
}
const drainRuns = results.filter((r) => r.scenario === "drains")
if (drainRuns.length > 0) {
  const of = (kind: string) => drainRuns.filter((r) => r.relay === kind)
  const base = median(of("syslog+tcp").map((r) => r.linesPerSecond))
  const drainTable = DRAIN_KINDS.filter((kind) => of(kind).length > 0).map((kind) => {
    const rs = of(kind)
    const linesPerSecond = Math.round(median(rs.map((r) => r.linesPerSecond)))
    return {
      drain: kind,
      "lines/s": linesPerSecond,
      "vs syslog+tcp": Number.isNaN(base) ? "" : Number((linesPerSecond / base).toFixed(2)),
      "CPU-s/M": Number(median(rs.map((r) => r.cpuSecondsPerMillion)).toFixed(2)),
      "peak RSS MB": Number(median(rs.map((r) => r.peakRssMB)).toFixed(1)),
      lost: Math.max(...rs.map((r) => r.lost))
    }
  })
  console.log("\ndrains (logtrain alone; the relay's input, one drain each)")
  console.table(drainTable)
  summary.push(...drainTable.map((row) => ({ scenario: "drains", ...row })))
}
if (unavailable.length > 0) console.log(`could not run:\n  ${unavailable.join("\n  ")}`)
const resultsDir = join(root, "bench/results")
mkdirSync(resultsDir, { recursive: true })
const file = join(resultsDir, `${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
writeFileSync(file, `${JSON.stringify({ node: process.version, cores: cpus().length, entry: logtrainEntry, runs: results, summary, relays: relayTable, reference, stress, unavailable }, null, 2)}\n`)
console.log(`results: ${file.replace(`${root}/`, "")}`)
// Done: whatever the peers' helpers left open (keep-alive sockets, timers) must not keep the run alive.
process.exit(0)
