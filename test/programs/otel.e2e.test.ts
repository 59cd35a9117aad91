/**
 * logtrain as a process with OpenTelemetry and Loki on both sides: lines in by syslog TCP and by
 * container log files, out to the OTLP and Loki stand-ins (every field decoded with the official
 * definitions; streams and labels as documented); OTLP in, routed to a syslog receiver byte for
 * byte; a malformed body refused without harm to anything else.
 */
import { assert, describe, it } from "@effect/vitest"
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as FakeLoki from "../helpers/FakeLoki.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import * as OtlpReceiver from "../helpers/OtlpReceiver.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogReceiver from "../helpers/SyslogReceiver.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const until = async (condition: () => boolean, what: () => string, ms = 10_000) => {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`)
    await sleep(20)
  }
}

const sendTcp = (port: number, text: string) =>
  new Promise<void>((resolve, reject) => {
    const socket = Net.createConnection({ host: "127.0.0.1", port }, () => socket.end(text, () => resolve()))
    socket.once("error", reject)
  })

const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`

const s = (stringValue: string) => ({ stringValue })
const kv = (key: string, value: Record<string, unknown>) => ({ key, value })

const postOtlp = async (port: number, body: Uint8Array | string, contentType = "application/x-protobuf") => {
  const r = await fetch(`http://127.0.0.1:${port}/v1/logs`, { method: "POST", body: typeof body === "string" ? body : Buffer.from(body), headers: { "content-type": contentType } })
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) }
}

const protobuf = (message: Record<string, unknown>) =>
  OtlpReceiver.ExportLogsServiceRequest.encode(OtlpReceiver.ExportLogsServiceRequest.fromObject(message)).finish()

/** A CRI time, second `i`. */
const at = (i: number) => `2026-03-04T05:06:0${i}.123456789Z`

describe("logtrain with OpenTelemetry and Loki", () => {
  it("delivers syslog TCP lines to otlp+http and loki+http with every field", async () => {
    const [http, tcp] = await freePorts(2)
    const otlp = await OtlpReceiver.listen()
    const loki = await FakeLoki.listen()
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      ROUTES: JSON.stringify({
        "api.prod": [`otlp+http://127.0.0.1:${otlp.port}`, `loki+http://127.0.0.1:${loki.port}?labels=level`],
        "legacy": [`otlp+http://127.0.0.1:${otlp.port}?encoding=json`]
      })
    })
    try {
      await LogtrainProcess.ready(lt)
      await sendTcp(tcp!, [
        octet("<131>1 2026-03-04T05:06:07.089123+01:00 api.prod api-7d 4242 REQ [req@32473 id=\"9\"] GET /orders 500 ✗"),
        octet("<14>1 2026-03-04T05:06:08.000Z api.prod api-7d - - - second"),
        octet("<85>Mar  4 05:06:09 legacy sshd[77]: accepted")
      ].join(""))
      await until(() => otlp.records().length === 3 && loki.lines().length === 2, () => `otlp ${otlp.records().length}/3, loki ${loki.lines().length}/2`)
      const [first, second] = otlp.records().filter((r) => r.resource["host.name"] === "api.prod")
      assert.deepStrictEqual({ ...first!, observedTimeUnixNano: undefined }, {
        resource: { "host.name": "api.prod" },
        scope: "logtrain",
        timeUnixNano: String(Date.parse("2026-03-04T04:06:07.089Z") * 1e6),
        observedTimeUnixNano: undefined,
        severityNumber: 17,
        severityText: "err",
        body: "GET /orders 500 ✗",
        attributes: {
          "syslog.facility": 16,
          "syslog.appname": "api-7d",
          "syslog.procid": "4242",
          "syslog.msgid": "REQ",
          "syslog.structured_data": "[req@32473 id=\"9\"]"
        }
      })
      assert.isAbove(Number(BigInt(first!.observedTimeUnixNano!) / 1_000_000n), Date.now() - 60_000)
      assert.deepStrictEqual([second!.severityNumber, second!.severityText, second!.body], [9, "info", "second"])
      const legacy = otlp.records().find((r) => r.resource["host.name"] === "legacy")!
      assert.deepStrictEqual([legacy.severityNumber, legacy.severityText, legacy.body, legacy.attributes], [10, "notice", "accepted", {
        "syslog.facility": 10,
        "syslog.appname": "sshd",
        "syslog.procid": "77"
      }])
      assert.isTrue(otlp.requests.some((r) => r.encoding === "json") && otlp.requests.some((r) => r.encoding === "protobuf"))
      assert.deepStrictEqual([...loki.streams.keys()].toSorted(), ["{app=\"api.prod\", level=\"error\"}", "{app=\"api.prod\", level=\"info\"}"])
      assert.deepStrictEqual(loki.streams.get("{app=\"api.prod\", level=\"error\"}")!.entries, [{
        ns: `${Date.parse("2026-03-04T04:06:07.089Z")}000000`,
        line: "GET /orders 500 ✗",
        metadata: { tag: "api-7d", facility: "local0", procid: "4242", msgid: "REQ", structured_data: "[req@32473 id=\"9\"]" }
      }])
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await otlp.stop()
      await loki.stop()
    }
  }, 30_000)

  it("delivers container log lines to otlp+http and loki+http, named from their files", async () => {
    const root = mkdtempSync(join(tmpdir(), "logtrain-otel-"))
    const containers = join(root, "containers")
    mkdirSync(containers)
    const file = join(root, "0.log")
    writeFileSync(file, "")
    symlinkSync(file, join(containers, `web-5d8f7c-x2x9q_shop_app-${"c0ffee00".repeat(8)}.log`))
    const [http] = await freePorts(1)
    const otlp = await OtlpReceiver.listen()
    const loki = await FakeLoki.listen()
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      KUBERNETES: "true",
      KUBERNETES_LOG_PATH: containers,
      STATE_DIR: join(root, "state"),
      HOME: root,
      ROUTES: JSON.stringify({ "web.shop": [`otlp+http://127.0.0.1:${otlp.port}`, `loki+http://127.0.0.1:${loki.port}`] })
    })
    try {
      await LogtrainProcess.ready(lt)
      await sleep(300)
      appendFileSync(file, `${at(1)} stdout F hello from a pod\n${at(2)} stderr F something failed\n${at(3)} stdout P joined \n${at(3)} stdout F line\n`)
      await until(() => otlp.records().length === 3 && loki.lines().length === 3, () => `otlp ${otlp.records().length}/3, loki ${loki.lines().length}/3`)
      const records = otlp.records()
      assert.deepStrictEqual(records.map((r) => [r.resource["host.name"], r.attributes["syslog.appname"], r.body, r.severityText]), [
        ["web.shop", "web-5d8f7c-x2x9q", "hello from a pod", "info"],
        ["web.shop", "web-5d8f7c-x2x9q", "something failed", "err"],
        ["web.shop", "web-5d8f7c-x2x9q", "joined line", "info"]
      ])
      assert.deepStrictEqual(records.map((r) => r.timeUnixNano), [1, 2, 3].map((i) => String(Date.parse(at(i).replace("456789", "")) * 1e6)))
      assert.deepStrictEqual(records[0]!.resource, {
        "host.name": "web.shop",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "web-5d8f7c-x2x9q",
        "k8s.container.name": "app",
        "container.id": "c0ffee00".repeat(8)
      })
      assert.deepStrictEqual([...loki.streams.keys()], ["{app=\"web.shop\"}"])
      assert.deepStrictEqual(loki.streams.get("{app=\"web.shop\"}")!.entries.map((e) => [e.line, e.metadata?.level, e.metadata?.tag]), [
        ["hello from a pod", "info", "web-5d8f7c-x2x9q"],
        ["something failed", "error", "web-5d8f7c-x2x9q"],
        ["joined line", "info", "web-5d8f7c-x2x9q"]
      ])
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await otlp.stop()
      await loki.stop()
      rmSync(root, { recursive: true, force: true })
    }
  }, 30_000)

  it("routes OTLP input byte for byte to a syslog receiver, names hosts as documented, carries k8s fields on, and refuses a malformed body alone", async () => {
    const [http, sink] = await freePorts(2)
    const receiver = await SyslogReceiver.listen(sink!)
    const otlp = await OtlpReceiver.listen()
    const loki = await FakeLoki.listen()
    const syslog = `syslog+tcp://127.0.0.1:${sink}?framing=octet-counting`
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      OTLP: "true",
      ROUTES: JSON.stringify({
        "checkout.shop": [syslog, `otlp+http://127.0.0.1:${otlp.port}`, `loki+http://127.0.0.1:${loki.port}?labels=namespace,container`],
        "billing": [syslog],
        "vm-3": [syslog]
      })
    })
    try {
      await LogtrainProcess.ready(lt)
      const message = "tab\there, ünïcödé ✓, a \"quote\"\nand a second line"
      const checkout = protobuf({
        resourceLogs: [{
          resource: { attributes: [kv("k8s.deployment.name", s("checkout")), kv("k8s.namespace.name", s("shop")), kv("k8s.pod.name", s("checkout-7f-abcde")), kv("k8s.container.name", s("app"))] },
          scopeLogs: [{ logRecords: [{ timeUnixNano: "1772600000123000000", severityNumber: 17, body: s(message), attributes: [kv("syslog.procid", s("31"))] }] }]
        }]
      })
      assert.strictEqual((await postOtlp(http!, checkout)).status, 200)
      const malformed = await postOtlp(http!, checkout.slice(0, checkout.length - 5))
      assert.strictEqual(malformed.status, 400)
      assert.match(String(OtlpReceiver.Status.toObject(OtlpReceiver.Status.decode(malformed.body)).message), /not an OTLP logs request/)
      const others = JSON.stringify({
        resourceLogs: [
          { resource: { attributes: [kv("service.name", s("billing"))] }, scopeLogs: [{ logRecords: [{ body: s("from billing") }] }] },
          { resource: { attributes: [kv("host.name", s("vm-3"))] }, scopeLogs: [{ logRecords: [{ body: s("from a vm") }] }] }
        ]
      })
      assert.strictEqual((await postOtlp(http!, others, "application/json")).status, 200)
      await receiver.waitFor(3)
      const [first, ...rest] = receiver.lines
      assert.strictEqual(first, `<11>1 ${new Date(1772600000123).toISOString()} checkout.shop checkout-7f-abcde 31 - - ${message}`)
      assert.deepStrictEqual(rest.toSorted(), [
        `<14>1 ${rest.find((l) => l.includes("billing"))!.split(" ")[1]} billing billing - - - from billing`,
        `<14>1 ${rest.find((l) => l.includes("vm-3"))!.split(" ")[1]} vm-3 - - - - from a vm`
      ].toSorted())
      // The Kubernetes source rides along to the drains that have a place for it.
      await until(() => otlp.records().length === 1 && loki.lines().length === 1, () => `otlp ${otlp.records().length}, loki ${loki.lines().length}`)
      assert.deepStrictEqual(otlp.records()[0]!.resource, {
        "host.name": "checkout.shop",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "checkout-7f-abcde",
        "k8s.container.name": "app"
      })
      assert.deepStrictEqual([...loki.streams.keys()], ["{app=\"checkout.shop\", container=\"app\", namespace=\"shop\"}"])
      const metrics = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text()
      assert.match(metrics, /logtrain_input_records_total\{input="otlp"\} 3/)
      assert.match(metrics, /logtrain_input_errors_total\{input="otlp",reason="malformed"\} 1/)
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await receiver.stop()
      await otlp.stop()
      await loki.stop()
    }
  }, 30_000)

  it("names OTLP workloads name-namespace with AKKERIS=true", async () => {
    const [http, sink] = await freePorts(2)
    const receiver = await SyslogReceiver.listen(sink!)
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      OTLP: "true",
      AKKERIS: "true",
      ROUTES: JSON.stringify({ "checkout-shop": [`syslog+tcp://127.0.0.1:${sink}`] })
    })
    try {
      await LogtrainProcess.ready(lt)
      const body = protobuf({
        resourceLogs: [{
          resource: { attributes: [kv("service.name", s("checkout")), kv("k8s.namespace.name", s("shop"))] },
          scopeLogs: [{ logRecords: [{ body: s("akkeris") }] }]
        }]
      })
      assert.strictEqual((await postOtlp(http!, body)).status, 200)
      await receiver.waitFor(1)
      assert.match(receiver.lines[0]!, /^<14>1 \S+ checkout-shop checkout - - - akkeris$/)
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await receiver.stop()
    }
  }, 30_000)
})
