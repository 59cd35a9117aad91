import { assert, describe, it } from "@effect/vitest"
import * as E from "../../src/domain/EnvoyAccessLog.ts"
import type { LogPacket } from "../../src/domain/LogPacket.ts"

const plain = { akkeris: false }
const akkeris = { akkeris: true }

/** An entry as Istio sends it for a request to web.shop over TLS. */
const entry: E.HttpEntry = {
  common_properties: {
    upstream_cluster: "outbound|80||web.shop.svc.cluster.local",
    start_time: { seconds: 1_700_000_000, nanos: 123_456_789 },
    time_to_last_upstream_tx_byte: { nanos: 1_250_000 },
    time_to_last_upstream_rx_byte: { seconds: 1, nanos: 5_000_000 },
    time_to_last_downstream_tx_byte: { seconds: 1, nanos: 7_891_000 },
    tls_properties: { tls_version: "TLSv1_3", tls_sni_hostname: "shop.example.com" }
  },
  protocol_version: "HTTP2",
  request: {
    request_method: "POST",
    authority: "shop.example.com",
    path: "/cart/items?id=7",
    original_path: "/api/cart/items?id=7",
    forwarded_for: "203.0.113.9",
    request_id: "8c3e-11",
    request_headers_bytes: 420,
    request_body_bytes: 80
  },
  response: { response_code: { value: 201 }, response_headers_bytes: 200, response_body_bytes: 1024 }
}

describe("Envoy access log entries", () => {
  const clusters: ReadonlyArray<readonly [string | undefined, string | undefined, string | undefined]> = [
    ["outbound|80||web.shop.svc.cluster.local", "web.shop", "web-shop"],
    ["outbound|8080|v2|api.default.svc.cluster.local", "api.default", "api-default"],
    ["outbound|80||web.shop", "web.shop", "web-shop"],
    ["inbound|8080||", undefined, undefined],
    ["outbound|80||web", undefined, undefined],
    ["PassthroughCluster", undefined, undefined],
    ["BlackHoleCluster", undefined, undefined],
    ["", undefined, undefined],
    [undefined, undefined, undefined]
  ]
  for (const [cluster, name, akkerisName] of clusters) {
    it(`names the service of the cluster ${JSON.stringify(cluster)}`, () => {
      assert.strictEqual(E.serviceHostname(cluster, plain), name)
      assert.strictEqual(E.serviceHostname(cluster, akkeris), akkerisName)
    })
  }

  it("formats durations in milliseconds with two decimals", () => {
    const table: ReadonlyArray<readonly [E.Duration | undefined, string]> = [
      [{ nanos: 1_250_000 }, "1.25ms"],
      [{ seconds: 2 }, "2000.00ms"],
      [{ seconds: 1, nanos: 6_000 }, "1000.01ms"],
      [{ nanos: 4_999 }, "0.00ms"],
      [{}, "0.00ms"],
      [undefined, "0.00ms"]
    ]
    for (const [d, text] of table) assert.strictEqual(E.formatDuration(d), text, JSON.stringify(d))
  })

  it("takes the status from the response, else 499 when the client went away, else 0", () => {
    assert.strictEqual(E.statusOf(entry), 201)
    const gone: E.HttpEntry = { common_properties: { response_flags: { downstream_connection_termination: true } } }
    assert.strictEqual(E.statusOf(gone), 499)
    assert.strictEqual(E.statusOf({ ...gone, response: { response_code: { value: 200 } } }), 200)
    assert.strictEqual(E.statusOf({ common_properties: { response_flags: { no_healthy_upstream: true } as E.ResponseFlags } }), 0)
  })

  it("writes the router line of an HTTP entry, with origin and tls when the request came over TLS", () => {
    assert.strictEqual(
      E.formatHttp(entry),
      "bytes=1724 request_size=500 response_size=1224 method=POST request_id=8c3e-11 fwd=203.0.113.9 authority=shop.example.com " +
        "origin=https://shop.example.com/api/cart/items?id=7 protocol=http2 tls=TLSv1_3 status=201 connect=1.25ms service=1005.00ms " +
        "total=1007.89ms path=/cart/items?id=7"
    )
    const plainHttp: E.HttpEntry = {
      common_properties: { upstream_cluster: "outbound|80||web.shop.svc.cluster.local" },
      protocol_version: "HTTP11",
      request: { request_method: "GET", authority: "web", path: "/", request_headers_bytes: 100 },
      response: { response_code: { value: 304 }, response_headers_bytes: 50 }
    }
    assert.strictEqual(
      E.formatHttp(plainHttp),
      "bytes=150 request_size=100 response_size=50 method=GET request_id= fwd= authority=web protocol=http11 status=304 " +
        "connect=0.00ms service=0.00ms total=0.00ms path=/"
    )
    assert.strictEqual(
      E.formatHttp({}),
      "bytes=0 request_size=0 response_size=0 method=METHOD_UNSPECIFIED request_id= fwd= authority= protocol=protocol_unspecified " +
        "status=0 connect=0.00ms service=0.00ms total=0.00ms path="
    )
  })

  it("writes a line for a TCP entry", () => {
    const tcp: E.TcpEntry = {
      common_properties: {
        upstream_cluster: "outbound|5432||db.shop.svc.cluster.local",
        time_to_last_upstream_tx_byte: { nanos: 500_000 },
        time_to_last_downstream_tx_byte: { seconds: 30 },
        tls_properties: { tls_version: "TLSv1_2", tls_sni_hostname: "db" }
      },
      connection_properties: { received_bytes: 1000, sent_bytes: 24 }
    }
    assert.strictEqual(E.formatTcp(tcp), "bytes=1024 received=1000 sent=24 protocol=tcp sni=db tls=TLSv1_2 connect=0.50ms total=30000.00ms")
  })

  it("makes one packet per entry of a named service, counting the others", () => {
    const now = new Date("2026-01-01T00:00:00Z")
    const out: Array<LogPacket> = []
    const noStart: E.HttpEntry = { common_properties: { upstream_cluster: "outbound|80||api.default.svc.cluster.local" } }
    const inbound: E.HttpEntry = { common_properties: { upstream_cluster: "inbound|80||" } }
    assert.strictEqual(E.toPackets([entry, inbound, noStart], E.formatHttp, akkeris, now, out), 1)
    assert.deepStrictEqual(out.map((p) => [p.hostname, p.tag, p.time.toISOString(), p.severity, p.facility]), [
      ["web-shop", "akkeris/router", "2023-11-14T22:13:20.123Z", 6, 1],
      ["api-default", "akkeris/router", "2026-01-01T00:00:00.000Z", 6, 1]
    ])
    assert.strictEqual(out[0]!.message, E.formatHttp(entry))
    const named: Array<LogPacket> = []
    E.toPackets([entry], E.formatHttp, plain, now, named)
    assert.deepStrictEqual([named[0]!.hostname, named[0]!.tag], ["web.shop", "envoy"])
  })
})
