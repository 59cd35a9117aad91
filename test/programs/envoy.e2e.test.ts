/**
 * logtrain with ENVOY=true as a process: a gRPC client speaks the v3 and v2 access-log services,
 * and a syslog receiver behind a syslog+tcp drain gets the exact lines.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Grpc from "@grpc/grpc-js"
import * as EnvoyAls from "../../src/layers/inputs/envoy/EnvoyAls.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogReceiver from "../helpers/SyslogReceiver.ts"

type Client = Grpc.Client & {
  StreamAccessLogs(callback: (error: Grpc.ServiceError | null) => void): Grpc.ClientWritableStream<EnvoyAls.StreamAccessLogsMessage>
}

const send = (version: "v2" | "v3", port: number, messages: ReadonlyArray<EnvoyAls.StreamAccessLogsMessage>) =>
  new Promise<void>((resolve, reject) => {
    const Constructor = Grpc.makeGenericClientConstructor(EnvoyAls.services()[version], `AccessLogService${version}`)
    const client = new Constructor(`127.0.0.1:${port}`, Grpc.credentials.createInsecure()) as unknown as Client
    const stream = client.StreamAccessLogs((error) => {
      client.close()
      if (error === null) resolve()
      else reject(error)
    })
    for (const message of messages) stream.write(message)
    stream.end()
  })

const entry = (service: string, path: string, code: number, tls = false) => ({
  common_properties: {
    upstream_cluster: `outbound|80||${service}.svc.cluster.local`,
    start_time: { seconds: 1_767_225_600, nanos: 250_000_000 },
    time_to_last_upstream_tx_byte: { nanos: 2_000_000 },
    time_to_last_upstream_rx_byte: { nanos: 30_120_000 },
    time_to_last_downstream_tx_byte: { nanos: 31_000_000 },
    ...(tls ? { tls_properties: { tls_version: "TLSv1_3", tls_sni_hostname: "shop.example.com" } } : {})
  },
  protocol_version: "HTTP2",
  request: { request_method: "GET", authority: "shop.example.com", path, original_path: path, request_id: "id-1", forwarded_for: "198.51.100.4", request_headers_bytes: 300 },
  response: { response_code: { value: code }, response_headers_bytes: 100, response_body_bytes: 900 }
})

describe("logtrain with the Envoy input", () => {
  it("forwards each access-log entry of v3 and v2 streams as a router line of the service's hostname", async () => {
    const [http, envoy, sink] = await freePorts(3)
    const receiver = await SyslogReceiver.listen(sink!)
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      ENVOY: "true",
      ENVOY_PORT: String(envoy),
      AKKERIS: "true",
      ROUTES: JSON.stringify({ "web-shop": [`syslog+tcp://127.0.0.1:${sink}`] })
    })
    try {
      await LogtrainProcess.ready(lt)
      await send("v3", envoy!, [
        { http_logs: { log_entry: [entry("web.shop", "/", 200, true), entry("web.shop", "/cart", 302)] } },
        { http_logs: { log_entry: [entry("other.shop", "/", 200)] } }
      ])
      await send("v2", envoy!, [{ http_logs: { log_entry: [entry("web.shop", "/old", 404)] } }])
      await receiver.waitFor(3)
      const common = "connect=2.00ms service=30.12ms total=31.00ms"
      assert.deepStrictEqual(receiver.lines, [
        `<14>1 2026-01-01T00:00:00.250Z web-shop akkeris/router - - - bytes=1300 request_size=300 response_size=1000 method=GET request_id=id-1 fwd=198.51.100.4 authority=shop.example.com origin=https://shop.example.com/ protocol=http2 tls=TLSv1_3 status=200 ${common} path=/`,
        `<14>1 2026-01-01T00:00:00.250Z web-shop akkeris/router - - - bytes=1300 request_size=300 response_size=1000 method=GET request_id=id-1 fwd=198.51.100.4 authority=shop.example.com protocol=http2 status=302 ${common} path=/cart`,
        `<14>1 2026-01-01T00:00:00.250Z web-shop akkeris/router - - - bytes=1300 request_size=300 response_size=1000 method=GET request_id=id-1 fwd=198.51.100.4 authority=shop.example.com protocol=http2 status=404 ${common} path=/old`
      ])
      assert.strictEqual(await lt.stop(), 0)
    } finally {
      await lt.stop()
      await receiver.stop()
    }
  }, 30_000)
})
