/**
 * logtrain as a process, with real peers: util-linux `logger` sends, a TCP syslog receiver gets.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { certificates } from "../helpers/certs.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogReceiver from "../helpers/SyslogReceiver.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Runs util-linux logger, feeding it `lines` on stdin (one message per line). */
const logger = (args: ReadonlyArray<string>, lines: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const child = execFile("logger", args, (error) => (error ? reject(error) : resolve()))
    child.stdin!.end(`${lines.join("\n")}\n`)
  })

/** A TCP connection into logtrain's syslog input. */
const connect = (port: number) =>
  new Promise<Net.Socket>((resolve, reject) => {
    const socket = Net.createConnection({ host: "127.0.0.1", port }, () => resolve(socket))
    socket.once("error", reject)
  })

const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`

const line = (i: number) => `<14>1 2024-01-01T00:00:00.000Z app.default web - - - line ${i}`

/** logtrain with its TCP input (and no other) routing `hostname` to a syslog+tcp receiver. */
const tcpRelay = async (hostname: string, env: Record<string, string> = {}) => {
  const [http, tcp, sink] = await freePorts(3)
  const receiver = await SyslogReceiver.listen(sink!)
  const lt = LogtrainProcess.start({
    HTTP_PORT: String(http),
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(tcp),
    ROUTES: JSON.stringify({ [hostname]: [`syslog+tcp://127.0.0.1:${sink}`] }),
    ...env
  })
  return { http: http!, tcp: tcp!, receiver, lt }
}

const metric = async (httpPort: number, name: string): Promise<number> => {
  const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text())
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m").exec(text)
  return match === null ? Number.NaN : Number(match[1])
}

describe("logtrain end to end", () => {
  it("relays logger's RFC 5424 over TCP and RFC 3164 over UDP by hostname, and nothing of unrouted hostnames", async () => {
    const [http, tcp, udp, sink] = await freePorts(4)
    const receiver = await SyslogReceiver.listen(sink!)
    const host = hostname()
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      SYSLOG_UDP: "true",
      SYSLOG_UDP_PORT: String(udp),
      ROUTES: JSON.stringify({ [host]: [`syslog+tcp://127.0.0.1:${sink}`] })
    })
    try {
      await LogtrainProcess.ready(lt)
      const tcpLines = Array.from({ length: 50 }, (_, i) => `tcp line ${i} with ünïcode ✓`)
      const udpLines = Array.from({ length: 20 }, (_, i) => `udp line ${i}`)
      await logger(["-n", "127.0.0.1", "-P", String(tcp), "-T", "--octet-count", "-t", "e2e-tcp", "-p", "local3.warning"], tcpLines)
      for (const line of udpLines) {
        // One datagram at a time, paced: UDP on a busy machine may drop a burst, and that is not what is tested here.
        await logger(["-n", "127.0.0.1", "-P", String(udp), "-d", "--rfc3164", "-t", "e2e-udp", "-p", "user.err"], [line])
      }
      const stranger = await connect(tcp!)
      stranger.write(octet("<13>1 2024-01-01T00:00:00.000Z unrouted-host app - - - never routed"))
      stranger.end("<13>Jan  1 00:00:00 unrouted-host app: never routed either\n")

      await receiver.waitFor(70)
      await sleep(500)
      const packets = receiver.packets()
      assert.strictEqual(packets.length, 70, receiver.lines.slice(-3).join("\n"))
      assert.isTrue(packets.every((p) => p.hostname === host))
      const fromTcp = packets.filter((p) => p.tag === "e2e-tcp")
      assert.deepStrictEqual(fromTcp.map((p) => p.message), tcpLines)
      assert.isTrue(fromTcp.every((p) => p.facility === 19 && p.severity === 4 && p.structuredData?.includes("timeQuality")))
      const fromUdp = packets.filter((p) => p.tag === "e2e-udp")
      assert.deepStrictEqual(fromUdp.map((p) => p.message), udpLines)
      assert.isTrue(fromUdp.every((p) => p.facility === 1 && p.severity === 3))
      assert.strictEqual(await metric(http!, "logtrain_dead_packets_total"), 2)
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await receiver.stop()
    }
  }, 60_000)

  it("delivers, in order, every line sent while the drain's receiver was down for 10 s", async () => {
    const { http, tcp, receiver, lt } = await tcpRelay("app.default", { DRAIN_RETRY_MAX_DELAY: "1s" })
    try {
      await LogtrainProcess.ready(lt)
      const input = await connect(tcp!)
      input.write(octet(line(0)))
      await receiver.waitFor(1)

      await receiver.stop()
      const downSince = Date.now()
      for (let i = 1; i <= 100; i++) {
        input.write(octet(line(i)))
        await sleep(95)
      }
      await sleep(Math.max(0, 10_000 - (Date.now() - downSince)))
      assert.strictEqual(receiver.lines.length, 1, "nothing can arrive while the receiver is down")
      assert.isAbove(await metric(http!, "logtrain_drain_retries_total"), 3)
      await receiver.start()

      const firsts = () => [...new Set(receiver.packets().map((p) => p.message))]
      for (let waited = 0; firsts().length < 101 && waited < 15_000; waited += 50) await sleep(50)
      await sleep(300)
      assert.deepStrictEqual(firsts(), Array.from({ length: 101 }, (_, i) => `line ${i}`))
      // Line 0 may come twice: the receiver's close did not confirm it, so it was written again (counted).
      assert.isAtMost(receiver.packets().length - 101, await metric(http!, "logtrain_drain_resent_total"))
      input.end()
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await receiver.stop()
    }
  }, 60_000)

  it("on SIGTERM reads what senders already sent, delivers everything it holds and exits 0", async () => {
    const { tcp, receiver, lt } = await tcpRelay("*")
    try {
      await LogtrainProcess.ready(lt)
      const input = await connect(tcp!)
      const lines = Array.from({ length: 20_000 }, (_, i) => octet(`<14>1 2024-01-01T00:00:00.000Z host app - - - ${i}`))
      // SIGTERM as soon as the kernel has the bytes: the sender counts them as delivered, though
      // logtrain has not read most of them yet.
      await new Promise<void>((resolve) => input.write(lines.join(""), () => resolve()))
      assert.strictEqual(await lt.stop("SIGTERM"), 0, lt.stderr())
      await sleep(200)
      assert.strictEqual(receiver.lines.length, 20_000)
      input.destroy()
    } finally {
      await lt.stop()
      await receiver.stop()
    }
  }, 60_000)

  it("follows edits of the routes file without a restart, and keeps its routes through a broken edit", async () => {
    const [http, tcp, sinkA, sinkB] = await freePorts(4)
    const a = await SyslogReceiver.listen(sinkA!)
    const b = await SyslogReceiver.listen(sinkB!)
    const dir = mkdtempSync(join(tmpdir(), "logtrain-routes-"))
    const file = join(dir, "routes.json")
    writeFileSync(file, JSON.stringify({ api: `syslog+tcp://127.0.0.1:${sinkA}` }))
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      ROUTES_FILE: file,
      ROUTES_POLL_INTERVAL: "500ms"
    })
    try {
      await LogtrainProcess.ready(lt)
      const input = await connect(tcp!)
      input.write(octet("<14>1 - api app - - - first"))
      await a.waitFor(1)

      writeFileSync(file, JSON.stringify({ api: [`syslog+tcp://127.0.0.1:${sinkB}`] }))
      await sleep(1500)
      input.write(octet("<14>1 - api app - - - second"))
      await b.waitFor(1)

      writeFileSync(file, "{ this is not json")
      await sleep(1500)
      input.write(octet("<14>1 - api app - - - third"))
      await b.waitFor(2)
      assert.deepStrictEqual(a.packets().map((p) => p.message), ["first"])
      assert.deepStrictEqual(b.packets().map((p) => p.message), ["second", "third"])
      assert.include(lt.stderr(), "routes file not applied")
      input.end()
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await a.stop()
      await b.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it("refuses to start, in one line naming the variable, when configuration is wrong", async () => {
    const cases: ReadonlyArray<readonly [Record<string, string>, ReadonlyArray<string>]> = [
      [{ SYSLOG_TCP_PORT: "99999" }, ["SYSLOG_TCP_PORT", "between 1 and 65535"]],
      [{ SYSLOG_TCP: "maybe" }, ["SYSLOG_TCP", "true or false"]],
      [{ ROUTES_FILE: "/nonexistent/routes.json" }, ["ROUTES_FILE /nonexistent/routes.json", "cannot read"]],
      [{ ROUTES: "[1, 2]" }, ["ROUTES", "expected an object"]],
      [{ ENVOY: "true", ENVOY_PORT: "70000" }, ["ENVOY_PORT", "between 1 and 65535"]],
      [{ KUBERNETES: "true", KUBERNETES_LOG_PATH: "/nonexistent/containers" }, ["KUBERNETES_LOG_PATH /nonexistent/containers", "no such file"]],
      [{ KUBERNETES: "true", KUBERNETES_LOG_PATH: tmpdir(), STATE_DIR: "/etc/hostname/state" }, ["STATE_DIR /etc/hostname/state: cannot create it", "ENOTDIR"]],
      [{ KUBERNETES: "true", EXCLUDE_NAMESPACES: "a", KUBERNETES_MAX_LINE_SIZE: "10" }, ["KUBERNETES_MAX_LINE_SIZE", "greater than or equal to 1024"]],
      [{ KUBERNETES_DATASOURCE: "true", KUBECONFIG: "/nonexistent/kubeconfig" }, ["kubernetes: cannot load the configuration", "/nonexistent/kubeconfig"]],
      [{ KUBERNETES_DATASOURCE: "true", HOME: "/nonexistent" }, ["kubernetes: no cluster", "KUBECONFIG or --kube-config"]],
      [{ SYSLOG_TCP: "false", SYSLOG_UDP: "false" }, ["no inputs are enabled"]],
      [{ SYSLOG_TLS: "true" }, ["SYSLOG_TLS=true needs SYSLOG_TLS_CERT_PEM"]],
      [{ SYSLOG_TLS: "true", SYSLOG_TLS_CERT_PEM: certificates().serverCert }, ["SYSLOG_TLS=true needs SYSLOG_TLS_KEY_PEM"]],
      [{ SYSLOG_TLS: "true", SYSLOG_TLS_CERT_PEM: certificates().serverCert, SYSLOG_TLS_KEY_PEM: certificates().clientKey }, [
        "SYSLOG_TLS_CERT_PEM, SYSLOG_TLS_KEY_PEM:",
        "key values mismatch"
      ]],
      [{ HTTP_SYSLOG: "true", HTTP_SYSLOG_PATH: "syslog" }, ["HTTP_SYSLOG_PATH", "a path starting with /"]],
      [{ MEMORY_LIMIT: "lots" }, ["MEMORY_LIMIT", "a size such as 134217728, 128Mi or 64M"]],
      [{ MEMORY_LIMIT: "1Mi" }, ["MEMORY_LIMIT", "greater than or equal to 4194304"]]
    ]
    const withArgs: ReadonlyArray<readonly [ReadonlyArray<string>, ReadonlyArray<string>]> = [
      [["--kube-config"], ["--kube-config", "argument missing", "usage: logtrain [--kube-config <file>]"]],
      [["--verbose"], ["Unknown option '--verbose'", "usage: logtrain"]]
    ]
    for (const [env, expected, args] of [...cases, ...withArgs.map(([args, expected]) => [{}, expected, args] as const)]) {
      const [http, tcp, udp] = await freePorts(3)
      const lt = LogtrainProcess.start({ HTTP_PORT: String(http), SYSLOG_TCP_PORT: String(tcp), SYSLOG_UDP_PORT: String(udp), ...env }, args)
      const code = await lt.exited()
      assert.strictEqual(code, 1, `${JSON.stringify(env)}: ${lt.stderr()}`)
      const errors = lt.stderr().split("\n").filter((line) => line.includes("level=ERROR"))
      assert.strictEqual(errors.length, 1, lt.stderr())
      for (const text of expected) assert.include(errors[0], text, JSON.stringify(env))
    }
  }, 60_000)
})
