/**
 * logtrain as a process (the bundle with `LOGTRAIN_BUNDLE=dist/bundle/logtrain.js`), with the drain
 * URLs of the issue that found credentials in its logs and metrics: a password holding `#`, a bare
 * query token, a token as a path segment, and a receiver that echoes the Authorization header it
 * was sent in its refusal. Nothing of any secret may reach stderr or /metrics.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import * as HttpReceiver from "../helpers/HttpReceiver.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`

describe("credentials, end to end", () => {
  it("never reach the log or /metrics: not from a URL that does not parse, nor a query, a path, or a receiver's echo", async () => {
    const echo = await HttpReceiver.listen()
    echo.status = 401
    echo.answer = (request) =>
      `denied ${request.method} ${request.path}\n${request.rawHeaders.join(": ")}\n{"error":"bad credentials ${request.headers.authorization}"}`
    const [http, tcp, closed] = await freePorts(3)
    const routes = {
      "app-hash": [`https://u:S3cretHASH#x@127.0.0.1:${closed}/`],
      "app-query": [`http://127.0.0.1:${echo.port}/hook?S3cretQUERY`],
      "app-path": [`http://127.0.0.1:${echo.port}/hooks/T000/S3cretPATH`],
      "app-es": [`es+http://elastic:S3cretES@127.0.0.1:${echo.port}/?index=logs`],
      "app-bad": [`https://u:S3cret/SLASH@127.0.0.1:${closed}/`]
    }
    const lt = LogtrainProcess.start({
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      DRAIN_FLUSH_TIMEOUT: "1s",
      LOG_FORMAT: "json",
      ROUTES: JSON.stringify(routes)
    })
    try {
      await LogtrainProcess.ready(lt)
      const socket = Net.createConnection({ host: "127.0.0.1", port: tcp! })
      await new Promise((r) => socket.once("connect", r))
      for (const app of Object.keys(routes)) socket.write(octet(`<14>1 2024-01-01T00:00:00.000Z ${app} web - - - hello`))
      socket.end()
      // Three requests reach the echoing receiver; the other two drains fail to connect.
      const deadline = Date.now() + 10_000
      while ((echo.attempts.length < 3 || !lt.stderr().includes("drain failing")) && Date.now() < deadline) {
        await sleep(50)
      }
      await sleep(500)
      const metrics = await fetch(`http://127.0.0.1:${lt.httpPort}/metrics`).then((r) => r.text())
      assert.isAtLeast(echo.attempts.length, 3)
      // The echo held the credential: the test is not vacuous.
      assert.include(echo.attempts.map((a) => a.headers.authorization).join(" "), "Basic ")
      assert.include(lt.stderr(), "route ignored: invalid drain URL")
      assert.include(lt.stderr(), "drain refused a batch")
      assert.match(metrics, /logtrain_drain_sent_total\{drain="http:\/\/127\.0\.0\.1:\d+\/\*\*\*\?\*\*\*#[0-9a-f]{4}"/)
      const shown = `${lt.stderr()}\n${metrics}`
      for (const secret of ["S3cret", Buffer.from("elastic:S3cretES").toString("base64"), "SLASH", "T000"]) {
        assert.notInclude(shown, secret)
      }
    } finally {
      assert.strictEqual(await lt.stop(), 0, lt.stderr())
      await echo.stop()
    }
  }, 60_000)
})
