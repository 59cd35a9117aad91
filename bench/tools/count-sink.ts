/**
 * A TCP receiver that counts newline-terminated lines and reports the count on stdout every 50 ms
 * (and once more when stdin closes). Runs in its own process, so it never competes with the load
 * generator for a thread.
 *
 *   node bench/tools/count-sink.ts <port>
 */
import * as Net from "node:net"

const port = Number(process.argv[2])
let lines = 0
const server = Net.createServer((socket) => {
  socket.on("data", (chunk: Buffer) => {
    let i = -1
    while ((i = chunk.indexOf(10, i + 1)) !== -1) lines++
  })
})
server.listen(port, "127.0.0.1", () => process.stdout.write("ready\n"))
let last = -1
setInterval(() => {
  if (lines !== last) process.stdout.write(`${(last = lines)}\n`)
}, 50)
process.stdin.on("end", () => process.exit(0))
process.stdin.resume()
