import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { OtlpSerialization } from "effect/observability"
import * as fc from "fast-check"
import { Buffer } from "node:buffer"
import * as LogPacket from "../../src/domain/LogPacket.ts"
import * as Answers from "../../src/domain/otlp/Answers.ts"
import * as Logs from "../../src/domain/otlp/Logs.ts"
import * as Request from "../../src/domain/otlp/Request.ts"
import * as RequestJson from "../../src/domain/otlp/RequestJson.ts"
import * as Otlp from "../helpers/OtlpReceiver.ts"

/** Effect's own OTLP protobuf encoder, the reference ours must match byte for byte. */
const effectProtobuf = Context.get(
  Effect.runSync(Effect.scoped(Layer.build(OtlpSerialization.layerProtobuf))),
  OtlpSerialization.OtlpSerialization
)
const effectBytes = (data: Logs.LogsData): Uint8Array => (effectProtobuf.logs(data) as unknown as { body: Uint8Array }).body

/** A request as the official definitions decode it. */
const officialDecode = (bytes: Uint8Array) =>
  Otlp.ExportLogsServiceRequest.toObject(Otlp.ExportLogsServiceRequest.decode(bytes), Otlp.toObjectOptions) as {
    resourceLogs: Array<{
      resource: { attributes: Array<{ key: string; value: Record<string, unknown> }> }
      scopeLogs: Array<{ scope: { name: string }; logRecords: Array<Record<string, unknown>> }>
    }>
  }

const officialEncode = (request: Record<string, unknown>): Uint8Array =>
  Otlp.ExportLogsServiceRequest.encode(Otlp.ExportLogsServiceRequest.fromObject(request)).finish()

const decodeOptions: Request.DecodeOptions = {
  receivedAt: new Date("2026-01-01T00:00:00.000Z"),
  akkeris: false,
  fallbackHostname: "10.0.0.9",
  maxMessageBytes: 64 * 1024
}

const kv = (key: string, value: Record<string, unknown>) => ({ key, value })
const s = (stringValue: string) => ({ stringValue })

describe("OTLP severity (the logs data model's syslog mapping, Appendix B)", () => {
  it("maps each syslog severity to its SeverityNumber and keyword", () => {
    const table = [
      [LogPacket.Severity.Emergency, 21, "emerg"],
      [LogPacket.Severity.Alert, 19, "alert"],
      [LogPacket.Severity.Critical, 18, "crit"],
      [LogPacket.Severity.Error, 17, "err"],
      [LogPacket.Severity.Warning, 13, "warning"],
      [LogPacket.Severity.Notice, 10, "notice"],
      [LogPacket.Severity.Informational, 9, "info"],
      [LogPacket.Severity.Debug, 5, "debug"]
    ] as const
    for (const [severity, number, text] of table) {
      assert.strictEqual(Logs.severityNumbers[severity], number)
      assert.strictEqual(Logs.severityTexts[severity], text)
      // And back: the input reads what the drain writes.
      assert.strictEqual(Request.syslogSeverityOf(number, ""), severity)
    }
  })

  it("reads the numbers between the mapped ones and level names when the number is unset", () => {
    assert.strictEqual(Request.syslogSeverityOf(1, ""), LogPacket.Severity.Debug)
    assert.strictEqual(Request.syslogSeverityOf(12, ""), LogPacket.Severity.Notice)
    assert.strictEqual(Request.syslogSeverityOf(16, ""), LogPacket.Severity.Warning)
    assert.strictEqual(Request.syslogSeverityOf(20, ""), LogPacket.Severity.Alert)
    assert.strictEqual(Request.syslogSeverityOf(24, ""), LogPacket.Severity.Emergency)
    assert.strictEqual(Request.syslogSeverityOf(0, "WARN"), LogPacket.Severity.Warning)
    assert.strictEqual(Request.syslogSeverityOf(0, "Error"), LogPacket.Severity.Error)
    assert.strictEqual(Request.syslogSeverityOf(0, "FATAL"), LogPacket.Severity.Emergency)
    assert.strictEqual(Request.syslogSeverityOf(0, "whatever"), LogPacket.Severity.Informational)
    assert.strictEqual(Request.syslogSeverityOf(0, ""), LogPacket.Severity.Informational)
  })
})

describe("OTLP logs from packets", () => {
  const k8s = { namespace: "shop", pod: "web-5d8f7c-x2x9q", container: "app", containerId: "c0ffee" }
  const batch = [
    LogPacket.make({
      time: new Date("2026-03-04T05:06:07.089Z"),
      hostname: "web.shop",
      tag: "web-5d8f7c-x2x9q",
      message: "GET / 200 ünïcode",
      severity: LogPacket.Severity.Warning,
      facility: LogPacket.Facility.local3,
      procId: "42",
      msgId: "ACCESS",
      structuredData: "[req@1 id=\"7\"]",
      kubernetes: k8s
    }),
    LogPacket.make({ time: new Date(1000), hostname: "db", tag: "", message: "", severity: LogPacket.Severity.Debug }),
    LogPacket.make({ time: new Date("2026-03-04T05:06:08Z"), hostname: "web.shop", tag: "web-5d8f7c-x2x9q", message: "second", kubernetes: k8s })
  ]
  const bytes = Logs.encodeProtobuf(Logs.fromPackets(batch, "1772600000123000000"))

  it("writes every field, which the official definitions read back", () => {
    const decoded = officialDecode(bytes)
    assert.strictEqual(decoded.resourceLogs.length, 2, "one ResourceLogs per resource")
    const [web, db] = decoded.resourceLogs
    assert.deepStrictEqual(Otlp.attributes(web!.resource.attributes), {
      "host.name": "web.shop",
      "k8s.namespace.name": "shop",
      "k8s.pod.name": "web-5d8f7c-x2x9q",
      "k8s.container.name": "app",
      "container.id": "c0ffee"
    })
    assert.deepStrictEqual(Otlp.attributes(db!.resource.attributes), { "host.name": "db" })
    assert.strictEqual(web!.scopeLogs[0]!.scope.name, "logtrain")
    const [first, second] = web!.scopeLogs[0]!.logRecords
    assert.strictEqual(first!.timeUnixNano, String(Date.parse("2026-03-04T05:06:07.089Z") * 1e6))
    assert.strictEqual(first!.observedTimeUnixNano, "1772600000123000000")
    assert.strictEqual(first!.severityNumber, 13)
    assert.strictEqual(first!.severityText, "warning")
    assert.deepStrictEqual(first!.body, s("GET / 200 ünïcode"))
    assert.deepStrictEqual(Otlp.attributes(first!.attributes as never), {
      "syslog.facility": 19,
      "syslog.appname": "web-5d8f7c-x2x9q",
      "syslog.procid": "42",
      "syslog.msgid": "ACCESS",
      "syslog.structured_data": "[req@1 id=\"7\"]"
    })
    assert.deepStrictEqual(second!.body, s("second"))
    const only = db!.scopeLogs[0]!.logRecords[0]!
    assert.strictEqual(only.timeUnixNano, "1000000000")
    assert.strictEqual(only.severityNumber, 5)
    assert.deepStrictEqual(Otlp.attributes(only.attributes as never), { "syslog.facility": 1 }, "no empty attributes")
  })

  it("writes the same bytes as Effect's OTLP encoder, for any logs data", () => {
    const anyValue: fc.Arbitrary<Record<string, unknown>> = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        fc.string().map((v) => ({ stringValue: v })),
        fc.boolean().map((v) => ({ boolValue: v })),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((v) => ({ intValue: v.toString() })),
        fc.double({ noNaN: true }).map((v) => ({ doubleValue: v })),
        fc.array(tie("value"), { maxLength: 3 }).map((values) => ({ arrayValue: { values } })),
        fc.array(fc.record({ key: fc.string(), value: tie("value") }), { maxLength: 3 }).map((values) => ({ kvlistValue: { values } })),
        fc.uint8Array({ maxLength: 8 }).map((v) => ({ bytesValue: v }))
      )
    })).value as fc.Arbitrary<Record<string, unknown>>
    const attributes = fc.array(fc.record({ key: fc.string(), value: anyValue }), { maxLength: 4 })
    const nanos = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String)
    const record = fc.record({
      timeUnixNano: nanos,
      observedTimeUnixNano: nanos,
      severityNumber: fc.integer({ min: 0, max: 24 }),
      severityText: fc.string(),
      body: anyValue,
      attributes,
      droppedAttributesCount: fc.nat(1000)
    }, { requiredKeys: ["timeUnixNano", "observedTimeUnixNano", "attributes", "droppedAttributesCount"] })
    const data = fc.record({
      resourceLogs: fc.array(fc.record({
        resource: fc.record({ attributes, droppedAttributesCount: fc.nat(5) }),
        scopeLogs: fc.array(fc.record({ scope: fc.record({ name: fc.string() }), logRecords: fc.array(record, { maxLength: 4 }) }), { maxLength: 2 })
      }), { maxLength: 3 })
    }) as unknown as fc.Arbitrary<Logs.LogsData>
    fc.assert(fc.property(data, (d) => {
      assert.strictEqual(Buffer.from(Logs.encodeProtobuf(d, 16)).toString("hex"), Buffer.from(effectBytes(d)).toString("hex"))
    }), { numRuns: 300 })
  })

  it("encodes packets straight to the bytes fromPackets and the general encoder give, for any batch", () => {
    const shared = [undefined, { namespace: "ns", pod: "p-1", container: "c" }, { namespace: "ns", containerId: "abc" }, { pod: "ü" }]
    const packet = fc.record({
      time: fc.oneof(fc.integer({ min: -1000, max: 2 ** 45 }), fc.constant(Number.NaN)),
      hostname: fc.oneof(fc.constantFrom("web.shop", "db", ""), fc.string({ unit: "grapheme", maxLength: 20 })),
      tag: fc.string({ unit: "grapheme", maxLength: 20 }),
      message: fc.oneof(fc.string({ unit: "grapheme", maxLength: 300 }), fc.string({ maxLength: 20000 })),
      severity: fc.integer({ min: 0, max: 7 }),
      facility: fc.integer({ min: 0, max: 23 }),
      procId: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
      msgId: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
      structuredData: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
      kubernetes: fc.constantFrom(...shared)
    }).map((f) => LogPacket.make({ ...f, time: new Date(f.time) }))
    fc.assert(fc.property(fc.array(packet, { maxLength: 30 }), fc.integer({ min: 0, max: 2 ** 45 }), (batch, observed) => {
      const direct = Buffer.from(Logs.encodePackets(batch, observed)).toString("hex")
      assert.strictEqual(direct, Buffer.from(Logs.encodeProtobuf(Logs.fromPackets(batch, Logs.nanosOf(observed)))).toString("hex"))
    }), { numRuns: 300 })
  })

  it("writes the same bytes as Effect's encoder for a batch of packets, and messages above a length prefix's first byte", () => {
    const big = Array.from({ length: 300 }, (_, i) =>
      LogPacket.make({ time: new Date(1_700_000_000_000 + i), hostname: `h${i % 3}`, tag: "t", message: "x".repeat(i * 7) })
    )
    const data = Logs.fromPackets(big, "1")
    assert.strictEqual(Buffer.from(Logs.encodeProtobuf(data, 16)).toString("hex"), Buffer.from(effectBytes(data)).toString("hex"))
  })
})

/** What both encodings of `request` below must give. */
const check = (decoded: Request.Decoded) => {
  assert.strictEqual(decoded.total, 6)
  assert.strictEqual(decoded.rejected, 0)
  const [a, b, c, d, e, f] = decoded.packets
  assert.strictEqual(a!.hostname, "checkout.shop")
  assert.strictEqual(a!.tag, "checkout-7f-abcde")
  assert.strictEqual(a!.message, "payment failed\nwith a second line ✓")
  assert.strictEqual(a!.time.getTime(), 1772600000123)
  assert.strictEqual(a!.severity, LogPacket.Severity.Error)
  assert.strictEqual(a!.procId, "77")
  assert.deepStrictEqual(a!.kubernetes, { namespace: "shop", pod: "checkout-7f-abcde", container: "app", containerId: undefined })
  assert.strictEqual(b!.time.getTime(), 1772600002000, "observed time when the time is unset")
  assert.strictEqual(b!.message, "{\"a\":1,\"b\":[\"x\",true]}")
  assert.strictEqual(b!.severity, LogPacket.Severity.Informational)
  assert.strictEqual(c!.message, "12")
  assert.strictEqual(c!.time.getTime(), decodeOptions.receivedAt.getTime(), "the time of receipt when neither is set")
  assert.strictEqual(d!.hostname, "billing", "without a namespace and a host.name: the service's name")
  assert.strictEqual(d!.tag, "billing")
  assert.strictEqual(e!.hostname, "vm-3")
  assert.strictEqual(f!.hostname, "10.0.0.9", "nothing named: the sender's address")
  assert.isTrue(decoded.packets.every((p) => p.facility === LogPacket.Facility.user))
}

describe("OTLP logs requests as packets", () => {
  const request = {
    resourceLogs: [
      {
        resource: { attributes: [kv("k8s.deployment.name", s("checkout")), kv("k8s.namespace.name", s("shop")), kv("k8s.pod.name", s("checkout-7f-abcde")), kv("k8s.container.name", s("app")), kv("host.name", s("node-1"))] },
        scopeLogs: [{
          scope: { name: "io.opentelemetry.app" },
          logRecords: [
            {
              timeUnixNano: "1772600000123456789",
              observedTimeUnixNano: "1772600001000000000",
              severityNumber: 17,
              severityText: "ERROR",
              body: s("payment failed\nwith a second line ✓"),
              attributes: [kv("syslog.procid", s("77")), kv("http.status_code", { intValue: "502" })]
            },
            { observedTimeUnixNano: "1772600002000000000", body: { kvlistValue: { values: [kv("a", { intValue: "1" }), kv("b", { arrayValue: { values: [s("x"), { boolValue: true }] } })] } } },
            { body: { intValue: "12" } }
          ]
        }]
      },
      { resource: { attributes: [kv("service.name", s("billing"))] }, scopeLogs: [{ logRecords: [{ body: s("no namespace") }] }] },
      { resource: { attributes: [kv("host.name", s("vm-3"))] }, scopeLogs: [{ logRecords: [{ body: s("a host") }] }] },
      { scopeLogs: [{ logRecords: [{ body: s("nothing named") }] }] }
    ]
  }

  it("reads protobuf as the official definitions write it", () => {
    const decoded = Request.decodeProtobuf(officialEncode(request), decodeOptions)
    assert.strictEqual(decoded.packets.length, 6)
    check(decoded)
  })

  it("reads OTLP/JSON", () => {
    const decoded = RequestJson.decodeJson(JSON.parse(JSON.stringify(request)), decodeOptions)
    assert.strictEqual(decoded.packets.length, 6)
    check(decoded)
  })

  it("names a workload name-namespace with AKKERIS=true", () => {
    const decoded = Request.decodeProtobuf(officialEncode(request), { ...decodeOptions, akkeris: true })
    assert.strictEqual(decoded.packets[0]!.hostname, "checkout-shop")
  })

  it("reads back every field its own drain writes", () => {
    const packet = LogPacket.make({
      time: new Date("2026-03-04T05:06:07.089Z"),
      hostname: "web.shop",
      tag: "web-1",
      message: "hello",
      severity: LogPacket.Severity.Notice,
      facility: LogPacket.Facility.local7,
      procId: "9",
      msgId: "M",
      structuredData: "[a b=\"c\"]",
      kubernetes: { namespace: "shop", pod: "web-1", container: "app" }
    })
    const [back] = Request.decodeProtobuf(Logs.encodeProtobuf(Logs.fromPackets([packet], "5")), decodeOptions).packets
    // The resource has a namespace but no workload: the hostname is host.name, as it was.
    assert.deepStrictEqual({ ...back!, kubernetes: { ...back!.kubernetes } }, {
      ...packet,
      kubernetes: { namespace: "shop", pod: "web-1", container: "app", containerId: undefined }
    })
  })

  it("rejects a record with a broken field alone, and counts it", () => {
    const good = Otlp.ExportLogsServiceRequest.encode(Otlp.ExportLogsServiceRequest.fromObject({
      resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: s("first") }, { body: s("third") }] }] }]
    })).finish()
    // A record whose body string is not UTF-8, put between the two.
    const bad = Buffer.from([0x2a, 0x04, 0x0a, 0x02, 0xc3, 0x28])
    const records = officialDecode(good).resourceLogs[0]!.scopeLogs[0]!.logRecords.map((r) =>
      Buffer.from(Otlp.ExportLogsServiceRequest.lookupType("opentelemetry.proto.logs.v1.LogRecord").encode(r as never).finish())
    )
    const scope = Buffer.concat([field(2, records[0]!), field(2, bad), field(2, records[1]!)])
    const body = field(1, field(2, scope))
    const decoded = Request.decodeProtobuf(body, decodeOptions)
    assert.deepStrictEqual(decoded.packets.map((p) => p.message), ["first", "third"])
    assert.strictEqual(decoded.total, 3)
    assert.strictEqual(decoded.rejected, 1)
    assert.match(decoded.firstRejection!, /log record 2: .*UTF-8/)
    const json = RequestJson.decodeJson({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: s("ok") }, { severityNumber: "ERROR" }, 7] }] }] }, decodeOptions)
    assert.deepStrictEqual([json.packets.length, json.rejected, json.total], [1, 2, 3])
  })

  it("refuses a body that is not a request at all", () => {
    const body = officialEncode(request)
    assert.throws(() => Request.decodeProtobuf(body.slice(0, body.length - 3), decodeOptions), Request.OtlpDecodeError)
    assert.throws(() => Request.decodeProtobuf(Buffer.from("this is not protobuf at all"), decodeOptions), Request.OtlpDecodeError)
    assert.throws(() => RequestJson.decodeJson([1, 2], decodeOptions), Request.OtlpDecodeError)
    assert.throws(() => RequestJson.decodeJson({ resourceLogs: {} }, decodeOptions), Request.OtlpDecodeError)
  })

  it("cuts a message at the size limit, between characters, and counts it", () => {
    const decoded = RequestJson.decodeJson({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: s("é".repeat(600)) }] }] }] }, {
      ...decodeOptions,
      maxMessageBytes: 1001
    })
    assert.strictEqual(decoded.packets[0]!.message, "é".repeat(500))
    assert.strictEqual(decoded.truncated, 1)
  })

  it("reads nanosecond times exactly, to the millisecond", () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (nanos) => {
      const body = officialEncode({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ timeUnixNano: nanos.toString() }] }] }] })
      const [packet] = Request.decodeProtobuf(body, decodeOptions).packets
      const expected = nanos === 0n ? decodeOptions.receivedAt.getTime() : Number(nanos / 1_000_000n)
      assert.strictEqual(packet!.time.getTime(), expected === 0 ? decodeOptions.receivedAt.getTime() : expected)
    }))
  })
})

describe("OTLP answers", () => {
  it("a partial success, both ways, in both encodings", () => {
    const bytes = Answers.encodeResponse("protobuf", { rejected: 3, message: "three bad" }) as Uint8Array
    assert.deepStrictEqual(
      Otlp.ExportLogsServiceResponse.toObject(Otlp.ExportLogsServiceResponse.decode(bytes), Otlp.toObjectOptions),
      { partialSuccess: { rejectedLogRecords: "3", errorMessage: "three bad" } }
    )
    const official = Otlp.ExportLogsServiceResponse.encode(Otlp.ExportLogsServiceResponse.fromObject({
      partialSuccess: { rejectedLogRecords: 1234567, errorMessage: "too old" }
    })).finish()
    assert.deepStrictEqual(Answers.decodeResponse(official, "application/x-protobuf"), { rejected: 1234567, message: "too old" })
    assert.isUndefined(Answers.decodeResponse(Otlp.ExportLogsServiceResponse.encode({}).finish(), "application/x-protobuf"))
    assert.deepStrictEqual(
      Answers.decodeResponse(Buffer.from(Answers.encodeResponse("json", { rejected: 2, message: "m" }) as string), "application/json"),
      { rejected: 2, message: "m" }
    )
    assert.isUndefined(Answers.decodeResponse(Buffer.from("{}"), "application/json"))
    assert.isUndefined(Answers.decodeResponse(Buffer.from([0x0a, 0x02, 0x08, 0x05]), "text/html"), "a 200 that is not OTLP's is a delivery")
    assert.deepStrictEqual(Answers.decodeResponse(Buffer.from([0x0a, 0x02, 0x08, 0x05]), "application/x-protobuf"), { rejected: 5, message: "" })
    assert.strictEqual((Answers.encodeResponse("protobuf") as Uint8Array).length, 0)
  })

  it("a Status, both ways; a body of another kind as its text", () => {
    const bytes = Answers.encodeStatus("protobuf", 3, "bad body") as Uint8Array
    assert.deepStrictEqual(Otlp.Status.toObject(Otlp.Status.decode(bytes)), { code: 3, message: "bad body" })
    const official = Otlp.Status.encode(Otlp.Status.create({ code: 14, message: "overloaded" })).finish()
    assert.strictEqual(Answers.statusMessage(official, "application/x-protobuf"), "overloaded")
    assert.strictEqual(Answers.statusMessage(Buffer.from("{\"code\":3,\"message\":\"m\"}"), "application/json"), "m")
    assert.strictEqual(Answers.statusMessage(Buffer.from("<html>Bad Gateway</html>\n"), "text/html"), "<html>Bad Gateway</html>")
  })
})

/** A length-delimited protobuf field. */
const field = (n: number, content: Uint8Array): Buffer => {
  const length: Array<number> = []
  let v = content.length
  while (v >= 128) {
    length.push((v & 127) | 128)
    v >>>= 7
  }
  length.push(v)
  return Buffer.concat([Buffer.from([n * 8 + 2, ...length]), content])
}
