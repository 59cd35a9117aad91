/**
 * Interop with real syslog peers: rsyslog (with gnutls) and syslog-ng, both ways, over every
 * transport they share with logtrain. Each test compares what arrives with what was sent, field by
 * field: hostname, app-name (tag), procid, msgid, structured data, severity, facility, timestamp
 * and message.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Net from "node:net"
import { hostname } from "node:os"
import { caOption, certificates } from "../helpers/certs.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import * as Peers from "../helpers/Peers.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogReceiver from "../helpers/SyslogReceiver.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`

const waitFor = async (what: () => number, n: number, describe: () => string, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (what() < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n}, have ${what()}: ${describe()}`)
    await sleep(50)
  }
}

/** rsyslog writes every field of each message it receives as one JSON line in out.log. */
const RSYSLOG_FIELDS = `
template(name="fields" type="list") {
  constant(value="{\\"hostname\\":\\"") property(name="hostname" format="json")
  constant(value="\\",\\"app\\":\\"") property(name="app-name" format="json")
  constant(value="\\",\\"procid\\":\\"") property(name="procid" format="json")
  constant(value="\\",\\"msgid\\":\\"") property(name="msgid" format="json")
  constant(value="\\",\\"sd\\":\\"") property(name="structured-data" format="json")
  constant(value="\\",\\"severity\\":") property(name="syslogseverity")
  constant(value=",\\"facility\\":") property(name="syslogfacility")
  constant(value=",\\"time\\":\\"") property(name="timereported" dateFormat="rfc3339" format="json")
  constant(value="\\",\\"msg\\":\\"") property(name="msg" format="json")
  constant(value="\\"}\\n")
}`

interface Fields {
  readonly hostname: string
  readonly app: string
  readonly procid: string
  readonly msgid: string
  readonly sd: string
  readonly severity: number
  readonly facility: number
  readonly time: string
  readonly msg: string
}

/** What the test sends: RFC 5424 lines with every field set, in a variety worth checking. */
const sentLines = (host: string): Array<{ readonly line: string; readonly fields: Fields }> => [
  {
    line: `<165>1 2003-08-24T05:14:15.000003-07:00 ${host} myproc 8710 ID47 [exampleSDID@32473 iut="3" eventSource="App\\"x\\]"] an event`,
    fields: {
      hostname: host,
      app: "myproc",
      procid: "8710",
      msgid: "ID47",
      sd: `[exampleSDID@32473 iut="3" eventSource="App\\"x\\]"]`,
      severity: 5,
      facility: 20,
      time: "2003-08-24T05:14:15.000003-07:00",
      msg: "an event"
    }
  },
  {
    line: `<11>1 2024-02-29T23:59:59.123Z ${host} web-7d9f - - - ünïcödé ✓ message with = and "quotes"`,
    fields: {
      hostname: host,
      app: "web-7d9f",
      procid: "-",
      msgid: "-",
      sd: "-",
      severity: 3,
      facility: 1,
      time: "2024-02-29T23:59:59.123Z",
      msg: "ünïcödé ✓ message with = and \"quotes\""
    }
  },
  ...Array.from({ length: 50 }, (_, i) => ({
    line: `<134>1 2024-01-01T00:00:${String(i).padStart(2, "0")}Z ${host} app ${i} - - line ${i}`,
    fields: {
      hostname: host,
      app: "app",
      procid: String(i),
      msgid: "-",
      sd: "-",
      severity: 6,
      facility: 16,
      time: `2024-01-01T00:00:${String(i).padStart(2, "0")}Z`,
      msg: `line ${i}`
    }
  }))
]

/** Starts logtrain with a TCP input and the given routes; returns the input port and the process. */
const logtrainWithRoutes = async (routes: Record<string, ReadonlyArray<string>>, env: Record<string, string> = {}) => {
  const [http, tcp] = await freePorts(2)
  const lt = LogtrainProcess.start({
    HTTP_PORT: String(http),
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(tcp),
    ROUTES: JSON.stringify(routes),
    DRAIN_RETRY_MAX_DELAY: "1s",
    ...env
  })
  await LogtrainProcess.ready(lt)
  return { lt, tcp: tcp! }
}

/** syslog-ng's empty field for RFC 5424's NILVALUE. */
const nil = (v: unknown) => (v === "" || v === undefined ? "-" : v)

/** An rsyslog ruleset forwarding what it gets as RFC 5424 with omfwd `action`. */
const forward = (name: string, action: string) =>
  `ruleset(name="${name}") { action(type="omfwd" target="127.0.0.1" template="RSYSLOG_SyslogProtocol23Format" ${action}) }`

const sendTo = (port: number, text: string) =>
  new Promise<void>((resolve, reject) => {
    const socket = Net.createConnection({ host: "127.0.0.1", port }, () => socket.end(text, () => resolve()))
    socket.on("error", reject)
  })

describe("peers receiving from logtrain's drains", () => {
  const certs = certificates()
  const cases: ReadonlyArray<{
    readonly name: string
    readonly host: string
    readonly config: (port: number) => string
    readonly listen: (port: number) => { tcp?: Array<number>; udp?: Array<number> }
    readonly url: (port: number) => string
  }> = [
    {
      name: "rsyslog over syslog+tcp (newline framing)",
      host: "interop-tcp",
      config: (port) => `module(load="imtcp")\ninput(type="imtcp" port="${port}" address="127.0.0.1")`,
      listen: (port) => ({ tcp: [port] }),
      url: (port) => `syslog+tcp://127.0.0.1:${port}`
    },
    {
      name: "rsyslog over syslog+tcp (octet counting)",
      host: "interop-tcp-octet",
      config: (port) => `module(load="imtcp")\ninput(type="imtcp" port="${port}" address="127.0.0.1")`,
      listen: (port) => ({ tcp: [port] }),
      url: (port) => `syslog+tcp://127.0.0.1:${port}?framing=octet-counting`
    },
    {
      name: "rsyslog over syslog+udp",
      host: "interop-udp",
      config: (port) => `module(load="imudp")\ninput(type="imudp" port="${port}" address="127.0.0.1")`,
      listen: (port) => ({ udp: [port] }),
      url: (port) => `syslog+udp://127.0.0.1:${port}`
    },
    {
      name: "rsyslog over syslog+tls (gtls, verifying the server against the URL's CA)",
      host: "interop-tls",
      config: (port) =>
        `global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="${certs.files.ca}" ` +
        `DefaultNetstreamDriverCertFile="${certs.files.serverCert}" DefaultNetstreamDriverKeyFile="${certs.files.serverKey}")\n` +
        `module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")\n` +
        `input(type="imtcp" port="${port}" address="127.0.0.1")`,
      listen: (port) => ({ tcp: [port] }),
      url: (port) => `syslog+tls://localhost:${port}?ca=${caOption(certs.ca)}`
    }
  ]

  for (const c of cases) {
    it(`${c.name}: every field arrives as sent`, async () => {
      const [port] = await freePorts(1)
      const peer = await Peers.rsyslog(
        (dir) => `${RSYSLOG_FIELDS}\n${c.config(port!)}\naction(type="omfile" file="${dir}/out.log" template="fields")`,
        c.listen(port!)
      )
      const { lt, tcp } = await logtrainWithRoutes({ [c.host]: [c.url(port!)] })
      try {
        const sent = sentLines(c.host)
        if (c.host === "interop-udp") {
          // UDP has no flow control: pace the datagrams so a loaded machine does not drop any.
          for (const s of sent) {
            await sendTo(tcp, octet(s.line))
            await sleep(5)
          }
        } else {
          await sendTo(tcp, sent.map((s) => octet(s.line)).join(""))
        }
        await waitFor(() => peer.lines().length, sent.length, () => `${peer.log()}\n${lt.stderr()}`)
        const received = peer.lines().map((line) => JSON.parse(line) as Fields)
        const byProcAndMsg = (f: Fields) => `${f.procid}|${f.msg}`
        assert.deepStrictEqual(
          received.toSorted((a, b) => byProcAndMsg(a).localeCompare(byProcAndMsg(b))),
          sent.map((s) => s.fields).toSorted((a, b) => byProcAndMsg(a).localeCompare(byProcAndMsg(b)))
        )
      } finally {
        assert.strictEqual(await lt.stop(), 0, lt.stderr())
        await peer.stop()
      }
    }, 60_000)
  }

  it("syslog-ng over syslog+tcp (octet counting, its syslog() source): every field arrives as sent", async () => {
    const [port] = await freePorts(1)
    const peer = await Peers.syslogNg(
      (dir) => `
options { keep-hostname(yes); keep-timestamp(yes); frac-digits(6); };
source s_in { syslog(transport("tcp") ip("127.0.0.1") port(${port})); };
destination d_out { file("${dir}/out.log" template("$(format-json hostname=\${HOST} app=\${PROGRAM} procid=\${PID} msgid=\${MSGID} sd=\${SDATA} severity=int(\${LEVEL_NUM}) facility=int(\${FACILITY_NUM}) time=\${ISODATE} msg=\${MSG})\\n")); };
log { source(s_in); destination(d_out); };
`,
      { tcp: [port!] }
    )
    const { lt, tcp } = await logtrainWithRoutes({ "interop-sng": [`syslog+tcp://127.0.0.1:${port}?framing=octet-counting`] })
    try {
      const sent = sentLines("interop-sng")
      await sendTo(tcp, sent.map((s) => octet(s.line)).join(""))
      await waitFor(() => peer.lines().length, sent.length, () => `${peer.log()}\n${lt.stderr()}`)
      const received = peer.lines().map((line) => JSON.parse(line) as Record<string, unknown>)
      assert.strictEqual(received.length, sent.length)
      // syslog-ng shows NILVALUE as an empty field and writes times in its own RFC 3339 form.
      const normalized = received.map((r): Fields => ({
        hostname: String(r.hostname),
        app: String(r.app),
        procid: String(nil(r.procid)),
        msgid: String(nil(r.msgid)),
        sd: String(nil(r.sd)),
        severity: Number(r.severity),
        facility: Number(r.facility),
        time: new Date(String(r.time)).toISOString(),
        msg: String(r.msg)
      }))
      const expected = sent.map((s) => ({ ...s.fields, time: new Date(s.fields.time).toISOString() }))
      assert.deepStrictEqual(normalized, expected)
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await peer.stop()
    }
  }, 60_000)
})

/** Runs util-linux logger with `args`, one message per line of `lines`. */
const logger = (args: ReadonlyArray<string>, lines: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const child = execFile("logger", args, (error) => (error ? reject(error) : resolve()))
    child.stdin!.end(`${lines.join("\n")}\n`)
  })

describe("rsyslog sending into logtrain's inputs", () => {
  it("over TCP (octet-counted and newline), UDP and TLS: every field arrives as sent", async () => {
    const certs = certificates()
    const [http, ltTcp, ltUdp, ltTls, sink, inOctet, inNewline, inUdp, inTls, inLogger] = await freePorts(10)
    const receiver = await SyslogReceiver.listen(sink!)
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(ltTcp),
      SYSLOG_UDP: "true",
      SYSLOG_UDP_PORT: String(ltUdp),
      SYSLOG_TLS: "true",
      SYSLOG_TLS_PORT: String(ltTls),
      SYSLOG_TLS_CERT_PEM: certs.serverCert,
      SYSLOG_TLS_KEY_PEM: certs.serverKey,
      ROUTES: JSON.stringify({ "*": [`syslog+tcp://127.0.0.1:${sink}?framing=octet-counting`] })
    })
    await LogtrainProcess.ready(lt)
    // rsyslog takes messages on one TCP port per transport and forwards each port's messages over
    // that transport, formatted as RFC 5424 (RSYSLOG_SyslogProtocol23Format).
    const peer = await Peers.rsyslog(
      () => `
global(DefaultNetstreamDriverCAFile="${certs.files.ca}")
module(load="imtcp")
${forward("octet", `port="${ltTcp}" protocol="tcp" TCP_Framing="octet-counted"`)}
${forward("newline", `port="${ltTcp}" protocol="tcp"`)}
${forward("udp", `port="${ltUdp}" protocol="udp"`)}
${forward("tls", `port="${ltTls}" protocol="tcp" StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"`)}
input(type="imtcp" port="${inOctet}" address="127.0.0.1" ruleset="octet")
input(type="imtcp" port="${inNewline}" address="127.0.0.1" ruleset="newline")
input(type="imtcp" port="${inUdp}" address="127.0.0.1" ruleset="udp")
input(type="imtcp" port="${inTls}" address="127.0.0.1" ruleset="tls")
input(type="imtcp" port="${inLogger}" address="127.0.0.1" ruleset="tls")
`,
      { tcp: [inOctet!, inNewline!, inUdp!, inTls!, inLogger!] }
    )
    try {
      const transports = [["octet", inOctet], ["newline", inNewline], ["udp", inUdp], ["tls", inTls]] as const
      const sent = new Map<string, ReturnType<typeof sentLines>>()
      for (const [name, port] of transports) {
        const lines = sentLines(`via-${name}`)
        sent.set(`via-${name}`, lines)
        if (name === "udp") {
          for (const line of lines) {
            await sendTo(port!, octet(line.line))
            await sleep(5)
          }
        } else {
          await sendTo(port!, lines.map((l) => octet(l.line)).join(""))
        }
      }
      // And a message from util-linux logger itself, through rsyslog, over TLS.
      await logger(["-n", "127.0.0.1", "-P", String(inLogger), "-T", "--octet-count", "-t", "from-logger", "-p", "local3.warning"], ["logger → rsyslog → tls → logtrain"])
      const total = [...sent.values()].reduce((n, lines) => n + lines.length, 0) + 1
      await waitFor(() => receiver.lines.length, total, () => `${peer.log()}\n${lt.stderr()}`, 20_000)

      const packets = receiver.packets()
      for (const [host, lines] of sent) {
        const got = packets.filter((p) => p.hostname === host).map((p): Fields => ({
          hostname: p.hostname,
          app: p.tag,
          procid: p.procId ?? "-",
          msgid: p.msgId ?? "-",
          sd: p.structuredData ?? "-",
          severity: p.severity,
          facility: p.facility,
          time: p.time.toISOString(),
          msg: p.message
        }))
        const expected = lines.map((l) => ({ ...l.fields, time: new Date(l.fields.time).toISOString() }))
        const key = (f: Fields) => `${f.procid}|${f.msg}`
        assert.deepStrictEqual(got.toSorted((a, b) => key(a).localeCompare(key(b))), expected.toSorted((a, b) => key(a).localeCompare(key(b))), host)
      }
      const fromLogger = packets.find((p) => p.tag === "from-logger")
      assert.isDefined(fromLogger)
      assert.deepStrictEqual(
        [fromLogger!.hostname, fromLogger!.message, fromLogger!.facility, fromLogger!.severity],
        [hostname(), "logger → rsyslog → tls → logtrain", 19, 4]
      )
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await peer.stop()
      await receiver.stop()
    }
  }, 60_000)
})
