/**
 * The TCP syslog receiver of TcpSink.ts as a process of its own, so that a test can SIGKILL it
 * while lines flow and start it again on the same port:
 *
 *   node test/helpers/tcp-sink-process.ts <port> <file> [lines per second]
 *
 * Appends every whole line it reads to <file>, synchronously as it reads it (so that what it had
 * read when it was killed is there), and prints `listening` once it listens.
 */
import { openSync, writeSync } from "node:fs"
import { listen } from "./TcpSink.ts"

const [port, file, rate] = process.argv.slice(2)
const fd = openSync(file!, "a")
const sink = await listen(Number(port), {
  keep: false,
  onLines: (lines) => void writeSync(fd, `${lines.join("\n")}\n`)
})
// A slow receiver: reads no faster than this.
if (rate !== undefined) sink.pace(Number(rate))
process.stdout.write("listening\n")
