import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as HttpTransport from "../../../src/layers/transports/http.ts"

/** A server answering every POST with `answer(res)`; it tells whether it could write its whole answer. */
const server = (answer: (res: Http.ServerResponse) => void) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ port: number; server: Http.Server; finished: Array<boolean> }>((resolve) => {
        const finished: Array<boolean> = []
        const s = Http.createServer((req, res) => {
          req.resume()
          req.on("end", () => {
            res.on("close", () => finished.push(res.writableFinished))
            answer(res)
          })
        })
        s.listen(0, "127.0.0.1", () => resolve({ port: (s.address() as AddressInfo).port, server: s, finished }))
      })
    ),
    ({ server }) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
      )
  )

const clientFor = (port: number) =>
  HttpTransport.client({
    url: `http://127.0.0.1:${port}/in`,
    display: `http://127.0.0.1:${port}/***`,
    tls: { ca: undefined, insecure: false },
    timeout: Duration.seconds(10)
  })

/** Writes `total` bytes of `x` in 64 KiB chunks, minding backpressure. */
const stream = (res: Http.ServerResponse, total: number) => {
  res.writeHead(200, { "content-type": "application/json" })
  let sent = 0
  const more = () => {
    while (sent < total) {
      const n = Math.min(65536, total - sent)
      sent += n
      if (!res.write("x".repeat(n))) return void res.once("drain", more)
    }
    res.end()
  }
  more()
}

describe("HTTP transport answers", () => {
  it.live("keeps 4 KiB of an answer unless asked, and reads the whole of one when asked, up to the limit", () =>
    Effect.gen(function*() {
      const { port } = yield* server((res) => stream(res, 300_000))
      const client = yield* clientFor(port)
      const short = yield* client.post("x", { "content-type": "text/plain" })
      assert.deepStrictEqual([short.status, short.body.length, short.complete], [200, 4096, false])
      const whole = yield* client.post("x", { "content-type": "text/plain" }, { readLimit: 1_000_000 })
      assert.deepStrictEqual([whole.body.length, whole.complete], [300_000, true])
      const cut = yield* client.post("x", { "content-type": "text/plain" }, { readLimit: 299_999 })
      assert.deepStrictEqual([cut.body.length, cut.complete], [299_999, false])
    }))

  it.live("does not read an endless answer: it stops past 1 MiB and closes that connection", () =>
    Effect.gen(function*() {
      const { finished, port } = yield* server((res) => stream(res, 64 * 1024 * 1024))
      const client = yield* clientFor(port)
      const answer = yield* client.post("x", { "content-type": "text/plain" })
      assert.deepStrictEqual([answer.status, answer.body.length, answer.complete], [200, 4096, false])
      const deadline = Date.now() + 5000
      while (finished.length === 0 && Date.now() < deadline) yield* Effect.sleep("20 millis")
      assert.deepStrictEqual(finished, [false], "the server could not write its 64 MiB: the client stopped reading")
    }))

  it.live("fails, as a transport error worth retrying, when the answer breaks off", () =>
    Effect.gen(function*() {
      const { port } = yield* server((res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": "100000" })
        res.write("{\"items\":[")
        setTimeout(() => res.destroy(), 20)
      })
      const client = yield* clientFor(port)
      const exit = yield* Effect.exit(client.post("x", { "content-type": "text/plain" }, { readLimit: 1_000_000 }))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.include(String(error && "error" in error ? (error.error as Error).message : error), "the answer broke off")
    }))
})
