/**
 * Issue 19's hostile inputs, done for real against the built bundle (as the image runs it): TLS
 * client certificates that must be refused, unusable TLS material, a flood of connections holding
 * unfinished frames, TLS handshakes and HTTP requests that never finish, a body far over the
 * limit. Scaled down for CI (hundreds of connections, limits and timeouts lowered through the
 * environment), not the faults themselves.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Tls from "node:tls"
import * as Bundle from "../helpers/Bundle.ts"
import { certificates } from "../helpers/certs.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import * as Peers from "../helpers/Peers.ts"
import { freePorts } from "../helpers/ports.ts"

/** Writes `text` to a TCP port and closes the connection. */
const send = (port: number, text: string) =>
  new Promise<void>((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port }, () => socket.end(text, () => resolve()))
    socket.on("error", () => resolve())
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const bundle = Bundle.forTests()

/** The image's settings (Dockerfile), under which memory is measured. */
const IMAGE_ENV = { NODE_OPTIONS: "--max-semi-space-size=4", MALLOC_ARENA_MAX: "2" }

/** Starts the bundle's logtrain with `env`; its routes go to stdout (which is kept, and not read). */
const start = async (env: Record<string, string>) => {
  const [http, tcp, udp, tls] = await freePorts(4)
  const process = LogtrainProcess.startScript(bundle.script("logtrain"), {
    ...IMAGE_ENV,
    HTTP_PORT: String(http),
    SYSLOG_TCP_PORT: String(tcp),
    SYSLOG_UDP_PORT: String(udp),
    SYSLOG_TLS_PORT: String(tls),
    ...env
  })
  return { process, http: http!, tcp: tcp!, tls: tls! }
}

/** Starts it and waits until it is ready. */
const logtrain = async (env: Record<string, string>) => {
  const lt = await start({ ROUTES: JSON.stringify({ "*": ["stdout://"] }), ...env })
  await LogtrainProcess.ready(lt.process)
  return { ...lt, pid: lt.process.child.pid!, metric: (name: string, labels = "") => metric(lt.http, name, labels) }
}

/** Resident memory of a process, in MB (VmRSS; VmHWM for its peak). */
const residentMb = (pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024

/**
 * One series of /metrics, by name and exact labels; NaN if absent, or if /metrics could not be
 * read (a test may be holding every HTTP connection).
 */
const metric = async (httpPort: number, name: string, labels = ""): Promise<number> => {
  const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text(), () => "")
  const escaped = labels.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  return Number(new RegExp(`^${name}${labels === "" ? "" : `\\{${escaped}\\}`} ([0-9.e+-]+)$`, "m").exec(text)?.[1])
}

/** Polls until `read` gives `expected`, or fails saying what it last gave. */
const becomes = async (read: () => Promise<number>, expected: number, what: string, withinMs = 10_000) => {
  const deadline = Date.now() + withinMs
  let value = await read()
  while (value !== expected && Date.now() < deadline) {
    await sleep(100)
    value = await read()
  }
  assert.strictEqual(value, expected, what)
}

/** Polls until `read` gives at least `least`. */
const reaches = async (read: () => Promise<number>, least: number, what: string, withinMs = 10_000) => {
  const deadline = Date.now() + withinMs
  let value = await read()
  while (!(value >= least) && Date.now() < deadline) {
    await sleep(100)
    value = await read()
  }
  assert.isAtLeast(value, least, what)
}

interface Client {
  readonly socket: Net.Socket
  readonly closed: () => boolean
}

/** Opens `n` connections to `port`, each writing `payload` (if any); resolves once each is open (or refused). */
const open = async (n: number, port: number, payload?: Buffer): Promise<Array<Client>> => {
  const clients: Array<Client> = []
  const opening: Array<Promise<void>> = []
  for (let i = 0; i < n; i++) {
    let closed = false
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.on("error", () => {})
    socket.on("data", () => {})
    socket.once("close", () => (closed = true))
    clients.push({ socket, closed: () => closed })
    opening.push(new Promise<void>((resolve) => {
      socket.once("connect", () => (payload === undefined ? resolve() : socket.write(payload, () => resolve())))
      socket.once("close", () => resolve())
    }))
    // A few at a time, as a flood from one host arrives.
    if (i % 50 === 49) await Promise.all(opening.splice(0))
  }
  await Promise.all(opening)
  return clients
}

/** Sends one line over TLS with `options`; resolves when the connection is over. */
const sendTls = (port: number, options: Tls.ConnectionOptions, line: string) =>
  new Promise<void>((resolve) => {
    const socket = Tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...options }, () => {
      socket.end(`${Buffer.byteLength(line)} ${line}`)
    })
    socket.on("error", () => resolve())
    socket.on("close", () => resolve())
  })

describe("hostile input against the bundle", () => {
  it("refuses to start, in one line naming the variable (and never showing the key), on a garbage CA, a CA that is not one, an expired certificate or an unusable key", async () => {
    const certs = certificates()
    const tls = { SYSLOG_TLS: "true", SYSLOG_TLS_CERT_PEM: certs.serverCert, SYSLOG_TLS_KEY_PEM: certs.serverKey }
    const cases: ReadonlyArray<readonly [Record<string, string>, ReadonlyArray<string>]> = [
      [{ ...tls, SYSLOG_TLS_CA_PEM: "garbage, not a PEM" }, ["SYSLOG_TLS_CA_PEM: no PEM certificate in it"]],
      [{ ...tls, SYSLOG_TLS_CA_PEM: "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n" }, [
        "SYSLOG_TLS_CA_PEM: certificate 1 of 1 cannot be read"
      ]],
      [{ ...tls, SYSLOG_TLS_CA_PEM: certs.clientCert }, ["SYSLOG_TLS_CA_PEM:", "is not a CA certificate"]],
      [{ ...tls, SYSLOG_TLS_CERT_PEM: certs.refusedClients.expired.cert, SYSLOG_TLS_KEY_PEM: certs.refusedClients.expired.key }, [
        "SYSLOG_TLS_CERT_PEM:",
        "expired on"
      ]],
      [{ ...tls, SYSLOG_TLS_KEY_PEM: "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n-----END PRIVATE KEY-----\n" }, [
        "SYSLOG_TLS_KEY_PEM: not a usable private key"
      ]]
    ]
    for (const [env, expected] of cases) {
      const { process } = await start(env)
      const code = await Promise.race([process.exited(), sleep(10_000).then(() => "still running")])
      if (code === "still running") await process.stop("SIGKILL")
      assert.strictEqual(code, 1, `${expected[0]}: ${process.stderr()}`)
      const errors = process.stderr().split("\n").filter((line) => line.includes("level=ERROR"))
      assert.strictEqual(errors.length, 1, process.stderr())
      for (const text of expected) assert.include(errors[0], text)
      assert.notInclude(process.stderr(), "PRIVATE KEY")
      assert.notInclude(process.stderr(), "c2VjcmV0")
    }
  }, 60_000)

  it("refuses client certificates of another CA, expired or self-signed, over real TLS, counts them, and takes only the good client's lines; warns of a SYSLOG_TLS_SERVER_NAME the certificate does not cover", async () => {
    const certs = certificates()
    const lt = await logtrain({
      SYSLOG_TLS: "true",
      SYSLOG_TLS_CERT_PEM: certs.serverCert,
      SYSLOG_TLS_KEY_PEM: certs.serverKey,
      SYSLOG_TLS_CA_PEM: certs.ca,
      // A name the certificate does not cover: said at start, and no reason not to start.
      SYSLOG_TLS_SERVER_NAME: "logs.not-covered.example"
    })
    try {
      for (const [name, client] of Object.entries(certs.refusedClients)) {
        await sendTls(lt.tls, { ca: certs.ca, cert: client.cert, key: client.key }, `<14>1 - host app - - - from ${name}`)
      }
      await sendTls(lt.tls, { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }, "<14>1 - host app - - - good")
      await becomes(() => lt.metric("logtrain_input_records_total", `input="syslog_tls"`), 1, "only the good client's line is taken")
      assert.strictEqual(await lt.metric("logtrain_input_errors_total", `input="syslog_tls",reason="tls_handshake"`), 3)
      await sleep(200)
      assert.strictEqual(await lt.metric("logtrain_input_records_total", `input="syslog_tls"`), 1)
      assert.include(lt.process.stderr(), "clientCertificates=")
      assert.match(lt.process.stderr(), /level=WARN .*SYSLOG_TLS_SERVER_NAME: the certificate is not valid for logs\.not-covered\.example/)
    } finally {
      await lt.process.stop()
    }
  }, 30_000)

  it("rsyslog with a client certificate of the CA is taken, rsyslog with one of another CA is refused and counted (real gnutls clients)", async () => {
    const certs = certificates()
    const lt = await logtrain({
      SYSLOG_TLS: "true",
      SYSLOG_TLS_CERT_PEM: certs.serverCert,
      SYSLOG_TLS_KEY_PEM: certs.serverKey,
      SYSLOG_TLS_CA_PEM: certs.ca
    })
    const [goodIn, badIn] = await freePorts(2)
    // rsyslog takes lines on a TCP port and forwards them to logtrain over TLS, presenting `cert`.
    const rsyslog = (port: number, cert: string, key: string) =>
      Peers.rsyslog(() => `
global(DefaultNetstreamDriverCAFile="${certs.files.ca}" DefaultNetstreamDriverCertFile="${cert}" DefaultNetstreamDriverKeyFile="${key}")
module(load="imtcp")
ruleset(name="tls") { action(type="omfwd" target="127.0.0.1" port="${lt.tls}" protocol="tcp" StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost" template="RSYSLOG_SyslogProtocol23Format") }
input(type="imtcp" port="${port}" address="127.0.0.1" ruleset="tls")
`, { tcp: [port] })
    const good = await rsyslog(goodIn!, certs.files.clientCert, certs.files.clientKey)
    const bad = await rsyslog(badIn!, join(certs.dir, "other-ca-client.pem"), join(certs.dir, "other-ca-client.key"))
    try {
      await send(badIn!, "<14>1 2026-01-01T00:00:00Z host app - - - from another CA\n")
      await reaches(() => lt.metric("logtrain_input_errors_total", `input="syslog_tls",reason="tls_handshake"`), 1, "the other CA's client refused")
      await send(goodIn!, "<14>1 2026-01-01T00:00:00Z host app - - - from the CA\n")
      await becomes(() => lt.metric("logtrain_input_records_total", `input="syslog_tls"`), 1, "the CA's client's line taken")
      await sleep(500)
      assert.strictEqual(await lt.metric("logtrain_input_records_total", `input="syslog_tls"`), 1, "and only that one")
    } finally {
      await Promise.all([good.stop(), bad.stop(), lt.process.stop()])
    }
  }, 30_000)

  it("a flood of connections holding unfinished frames: at most SYSLOG_MAX_CONNECTIONS held, the rest refused, the held ones closed at SYSLOG_FRAME_TIMEOUT, all counted", async () => {
    const lt = await logtrain({ SYSLOG_MAX_CONNECTIONS: "100", SYSLOG_FRAME_TIMEOUT: "3s" })
    try {
      // Most of a 60 KB line each, never finished.
      const payload = Buffer.alloc(60_000, "x")
      payload.write("<14>1 - host app - - - ")
      const clients = await open(400, lt.tcp, payload)
      await becomes(() => lt.metric("logtrain_input_limited_total", `input="syslog_tcp",reason="connection_limit"`), 300, "refused beyond the limit")
      assert.strictEqual(await lt.metric("logtrain_input_connections", `input="syslog_tcp"`), 100)
      await becomes(() => lt.metric("logtrain_input_limited_total", `input="syslog_tcp",reason="frame_timeout"`), 100, "held ones closed by the frame timeout")
      await becomes(() => lt.metric("logtrain_input_connections", `input="syslog_tcp"`), 0, "nothing left open")
      assert.isTrue(clients.every((c) => c.closed()))
      // What they held is delivered, not lost: a closed connection's last line is a line.
      await becomes(() => lt.metric("logtrain_input_records_total", `input="syslog_tcp"`), 100, "the held lines delivered")
    } finally {
      await lt.process.stop()
    }
  }, 30_000)

  it("at the default limits, 1,000 connections holding 60 KB each stay within the 128 MiB envelope, and memory comes back within 20 MB once they close", async () => {
    const lt = await logtrain({})
    try {
      await sleep(2500)
      const before = residentMb(lt.pid)
      const payload = Buffer.alloc(60_000, "x")
      payload.write("<14>1 - host app - - - ")
      const clients = await open(1000, lt.tcp, payload)
      await becomes(() => lt.metric("logtrain_input_connections", `input="syslog_tcp"`), 128, "SYSLOG_MAX_CONNECTIONS (128) held")
      await reaches(() => lt.metric("logtrain_input_limited_total", `input="syslog_tcp",reason="connection_limit"`), 872, "the rest refused")
      const held = residentMb(lt.pid)
      for (const c of clients) c.socket.destroy()
      await becomes(() => lt.metric("logtrain_input_records_total", `input="syslog_tcp"`), 128, "what they held delivered")
      const deadline = Date.now() + 15_000
      let now = residentMb(lt.pid)
      while (now > before + 20 && Date.now() < deadline) {
        await sleep(500)
        now = residentMb(lt.pid)
      }
      const peak = residentMb(lt.pid, "VmHWM")
      const report = `resident ${before.toFixed(1)} MB before, ${held.toFixed(1)} MB held, peak ${peak.toFixed(1)} MB, ${now.toFixed(1)} MB after`
      assert.isAtMost(now, before + 20, report)
      assert.isAtMost(peak, 128 * 1.048576, report)
    } finally {
      await lt.process.stop()
    }
  }, 40_000)

  it("TLS handshakes that never start are counted as connections while open, and closed at SYSLOG_TLS_HANDSHAKE_TIMEOUT", async () => {
    const certs = certificates()
    const lt = await logtrain({
      SYSLOG_TLS: "true",
      SYSLOG_TLS_CERT_PEM: certs.serverCert,
      SYSLOG_TLS_KEY_PEM: certs.serverKey,
      SYSLOG_TLS_HANDSHAKE_TIMEOUT: "2s",
      SYSLOG_MAX_CONNECTIONS: "1000"
    })
    try {
      const silent = await open(300, lt.tls)
      await becomes(() => lt.metric("logtrain_input_connections", `input="syslog_tls"`), 300, "half-open handshakes are connections", 1500)
      await becomes(() => lt.metric("logtrain_input_limited_total", `input="syslog_tls",reason="handshake_timeout"`), 300, "all abandoned")
      await becomes(() => lt.metric("logtrain_input_connections", `input="syslog_tls"`), 0, "none left open")
      assert.isTrue(silent.every((c) => c.closed()))
      assert.strictEqual(await lt.metric("logtrain_input_errors_total", `input="syslog_tls",reason="tls_handshake"`), 0)
    } finally {
      await lt.process.stop()
    }
  }, 30_000)

  it("HTTP requests that stall (or never start) are answered 408 at HTTP_HEADERS_TIMEOUT / HTTP_REQUEST_TIMEOUT, connections beyond HTTP_MAX_CONNECTIONS refused, all counted", async () => {
    const lt = await logtrain({ HTTP_SYSLOG: "true", HTTP_HEADERS_TIMEOUT: "1s", HTTP_REQUEST_TIMEOUT: "2s", HTTP_MAX_CONNECTIONS: "200" })
    try {
      const answers: Array<number> = []
      // Chunked bodies that never end.
      const stalled = Array.from({ length: 100 }, () => {
        const request = Http.request({ host: "127.0.0.1", port: lt.http, method: "POST", path: "/syslog", agent: false, headers: { "transfer-encoding": "chunked" } })
        request.on("error", () => {})
        request.on("response", (response) => {
          answers.push(response.statusCode!)
          response.on("error", () => {})
          response.resume()
        })
        request.write("<14>1 - host app - - - stalled")
        return request
      })
      // Headers that never end.
      const slow = await open(50, lt.http, Buffer.from("POST /syslog HTTP/1.1\r\nHost: x\r\n"))
      // And more connections than allowed.
      const extra = await open(80, lt.http)
      // 230 connections for 200 places (a scrape of /metrics may hold one more).
      await reaches(() => lt.metric("logtrain_input_limited_total", `input="http",reason="connection_limit"`), 30, "refused beyond the limit")
      await becomes(() => lt.metric("logtrain_input_limited_total", `input="http",reason="request_timeout"`), 100, "stalled bodies cut")
      // The stalled headers, and the connections that never sent a request at all.
      const refused = await lt.metric("logtrain_input_limited_total", `input="http",reason="connection_limit"`)
      await reaches(() => lt.metric("logtrain_input_limited_total", `input="http",reason="headers_timeout"`), 50 + 80 - refused, "stalled headers cut")
      await becomes(async () => answers.filter((s) => s === 408).length, 100, "each stalled body answered 408")
      assert.isTrue(slow.every((c) => c.closed()))
      assert.isTrue(extra.every((c) => c.closed()))
      for (const r of stalled) r.destroy()
      for (const c of extra) c.socket.destroy()
    } finally {
      await lt.process.stop()
    }
  }, 30_000)

  it("a 300 MB body is refused at the limit without being held (413, resident memory barely moves)", async () => {
    const lt = await logtrain({ HTTP_SYSLOG: "true" })
    try {
      const before = residentMb(lt.pid)
      const chunk = Buffer.alloc(1024 * 1024, "x")
      let sent = 0
      const status = await new Promise<number | string>((resolve) => {
        const request = Http.request({ host: "127.0.0.1", port: lt.http, method: "POST", path: "/syslog", agent: false, headers: { "transfer-encoding": "chunked" } })
        request.on("error", (error) => resolve(error.message))
        request.on("response", (response) => {
          response.on("error", () => {})
          response.resume()
          resolve(response.statusCode!)
        })
        const pump = () => {
          while (sent < 300 && request.write(chunk)) sent++
          if (sent < 300) request.once("drain", () => (sent++, pump()))
          else request.end()
        }
        pump()
      })
      assert.strictEqual(status, 413)
      assert.isBelow(sent, 300, "the upload was stopped early")
      assert.isBelow(residentMb(lt.pid, "VmHWM"), before + 30)
      await becomes(() => lt.metric("logtrain_input_limited_total", `input="http_syslog",reason="body_too_large"`), 1, "counted")
    } finally {
      await lt.process.stop()
    }
  }, 30_000)
})
