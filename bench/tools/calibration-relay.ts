/**
 * The calibration relay: the least a Node relay can do for the benchmark's relay scenarios, so a
 * run shows how far logtrain is from the runtime's own ceiling. Plain Node, no Effect: it reads
 * RFC 6587 octet-counted frames on a TCP port, finds each RFC 5424 message's hostname (the third
 * field), and writes the messages routed to `hostname` on, newline-framed, over one connection to
 * the sink — one write (one copy) per chunk read, the reading paused while the sink is behind. No buffering
 * beyond that, no metrics, no retries, no acknowledgements: a ceiling, not a peer.
 *
 *   node bench/tools/calibration-relay.ts <listen port> <sink port> <hostname>
 */
import * as Net from "node:net"

const [listenPort, sinkPort, hostname] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]!]
const host = Buffer.from(hostname)
const out = Net.createConnection({ host: "127.0.0.1", port: sinkPort }, () => {
  out.setNoDelay(true)
  Net.createServer((socket) => {
    let rest: Buffer = Buffer.alloc(0)
    socket.on("data", (data: Buffer) => {
      const chunk = rest.length === 0 ? data : Buffer.concat([rest, data])
      // Each frame loses its length prefix (2 bytes at least) and gains a newline: it fits.
      const line = Buffer.allocUnsafe(chunk.length)
      let used = 0
      let at = 0
      for (;;) {
        const space = chunk.indexOf(32, at)
        if (space === -1 || space - at > 10) break
        const length = Number(chunk.toString("latin1", at, space))
        const start = space + 1
        if (start + length > chunk.length) break
        // <PRI>1 TIMESTAMP HOSTNAME …: the hostname starts after the second space.
        const h = chunk.indexOf(32, chunk.indexOf(32, start) + 1) + 1
        if (h > 0 && h + host.length < start + length && chunk[h + host.length] === 32 && chunk.compare(host, 0, host.length, h, h + host.length) === 0) {
          // A frame may end in its own newline (loggen's do): one line either way.
          used += chunk.copy(line, used, start, chunk[start + length - 1] === 10 ? start + length - 1 : start + length)
          line[used++] = 10
        }
        at = start + length
      }
      rest = chunk.subarray(at)
      if (used > 0 && !out.write(line.subarray(0, used))) {
        socket.pause()
        out.once("drain", () => socket.resume())
      }
    })
    socket.on("error", () => {})
  }).listen(listenPort, "127.0.0.1", () => process.stdout.write("ready\n"))
})
out.on("error", (error) => {
  console.error(`calibration relay: the sink: ${error.message}`)
  process.exit(1)
})
process.stdin.on("end", () => process.exit(0))
process.stdin.resume()
