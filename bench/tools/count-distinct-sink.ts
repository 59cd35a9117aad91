/**
 * A syslog TCP receiver, an OTLP/HTTP logs receiver, a Loki push endpoint or a JSON (http://) endpoint
 * that counts what it is
 * sent, for `npm run bench`'s drains: every line's number (`line 000000123`, the end of the
 * message) is marked, so neither duplicates nor lines from anyone else (another bench on a shared
 * machine that happens on the port) are counted. Reports the number of distinct lines on stdout
 * every 50 ms, as count-sink.ts does. It walks the protobuf for the messages only (Loki's JSON it
 * parses), so that it is not what limits the drain it measures.
 *
 *   node bench/tools/count-distinct-sink.ts <port> <tcp|otlp|loki|json> <lines expected>
 */
import * as Http from "node:http"
import * as Net from "node:net"
import { gunzipSync } from "node:zlib"
import { Reader, WireType } from "../../src/domain/otlp/Protobuf.ts"

const port = Number(process.argv[2])
const kind = process.argv[3]
const seen = new Uint8Array(Number(process.argv[4]) + 1)
let distinct = 0

/** Marks the number that ends bytes [start, end) (digits after the last space). */
const mark = (buf: Uint8Array, start: number, end: number) => {
  let n = 0
  let scale = 1
  let i = end - 1
  while (i >= start && buf[i]! >= 48 && buf[i]! <= 57) {
    n += (buf[i]! - 48) * scale
    scale *= 10
    i--
  }
  if (i < end - 1 && n < seen.length && seen[n] === 0) {
    seen[n] = 1
    distinct++
  }
}

/** ExportLogsServiceRequest → ResourceLogs(1) → ScopeLogs(2) → LogRecord(2) → body(5) → string_value(1). */
const walk = (r: Reader, path: ReadonlyArray<number>, depth: number): void => {
  while (!r.done) {
    const { field, wireType } = r.tag()
    if (field !== path[depth] || wireType !== WireType.LengthDelimited) {
      r.skip(wireType)
      continue
    }
    const { end, start } = r.lengthDelimited()
    if (depth === path.length - 1) mark(r.buf, start, end)
    else walk(new Reader(r.buf, start, end), path, depth + 1)
  }
}
const MESSAGE = [1, 2, 2, 5, 1]

const server = kind === "tcp"
  ? Net.createServer((socket) => {
    let carry: Buffer | undefined
    socket.on("data", (data: Buffer) => {
      const chunk = carry === undefined ? data : Buffer.concat([carry, data])
      let start = 0
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
        mark(chunk, start, i)
        start = i + 1
      }
      carry = start < chunk.length ? chunk.subarray(start) : undefined
    })
    socket.on("error", () => {})
  })
  : Http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    const raw = Buffer.concat(chunks)
    const body = req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw
    if (kind === "otlp") {
      walk(new Reader(body), MESSAGE, 0)
      res.writeHead(200, { "content-type": "application/x-protobuf" })
    } else if (kind === "json") {
      // The http:// drain's array of packets.
      for (const packet of JSON.parse(body.toString("utf8")) as Array<{ message: string }>) {
        const line = packet.message
        const n = Number(line.slice(line.lastIndexOf(" ") + 1))
        if (Number.isInteger(n) && n >= 0 && n < seen.length && seen[n] === 0) {
          seen[n] = 1
          distinct++
        }
      }
      res.writeHead(200)
    } else {
      const push = JSON.parse(body.toString("utf8")) as { streams: Array<{ values: Array<[string, string]> }> }
      for (const stream of push.streams) {
        for (const [, line] of stream.values) {
          const n = Number(line.slice(line.lastIndexOf(" ") + 1))
          if (Number.isInteger(n) && n >= 0 && n < seen.length && seen[n] === 0) {
            seen[n] = 1
            distinct++
          }
        }
      }
      res.writeHead(204)
    }
    res.end()
  })
})
if (server instanceof Http.Server) server.keepAliveTimeout = 5000
server.listen(port, "127.0.0.1", () => process.stdout.write("ready\n"))
let last = -1
setInterval(() => {
  if (distinct !== last) process.stdout.write(`${(last = distinct)}\n`)
}, 50)
process.stdin.on("end", () => process.exit(0))
process.stdin.resume()
