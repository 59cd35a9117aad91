/**
 * A container runtime stand-in, run as its own process: writes numbered lines to a log file in
 * Docker json-file or CRI format, at a given rate, rotating the file as runtimes and logrotate do.
 *
 *   node test/helpers/log-writer.ts <file> <docker|cri> <from> <count> <lines per second>
 *     [rotate: none|rename|copytruncate] [rotate every N lines] [text prefix]
 *
 * - Line i says `<prefix>line <i>`; every 7th line is written in two pieces (partial + final),
 *   and every 5th goes to stderr.
 * - rename: the file is renamed to `<file>.<n>`, two more lines still go to the renamed file (as
 *   containerd writes until it reopens), then a new file is created at the path.
 * - copytruncate: the file is copied to `<file>.<n>`, then truncated (the writer appends, so it
 *   continues at the new end), as logrotate's copytruncate does.
 *
 * Prints `done <count>` when finished.
 */
import { closeSync, copyFileSync, ftruncateSync, openSync, renameSync, writeSync } from "node:fs"

const [file, format, fromArg, countArg, rateArg, rotate = "none", everyArg = "0", prefix = ""] = process.argv.slice(2)
const from = Number(fromArg)
const count = Number(countArg)
const rate = Number(rateArg)
const every = Number(everyArg)

const time = () => new Date().toISOString().replace("Z", "123456Z")

const encode = (text: string, stream: "stdout" | "stderr", partial: boolean): string =>
  format === "docker"
    ? `${JSON.stringify({ log: partial ? text : `${text}\n`, stream, time: time() })}\n`
    : `${time()} ${stream} ${partial ? "P" : "F"} ${text}\n`

const lineOf = (i: number): string => {
  const text = `${prefix}line ${i}`
  const stream = i % 5 === 0 ? "stderr" : "stdout"
  if (i % 7 !== 0) return encode(text, stream, false)
  const cut = Math.floor(text.length / 2)
  return encode(text.slice(0, cut), stream, true) + encode(text.slice(cut), stream, false)
}

const pause = new Int32Array(new SharedArrayBuffer(4))
const sleep = (ms: number) => Atomics.wait(pause, 0, 0, ms)

let fd = openSync(file!, "a")
let rotations = 0
const started = Date.now()
for (let n = 0; n < count; n++) {
  const i = from + n
  writeSync(fd, lineOf(i))
  if (rotate !== "none" && every > 0 && n > 0 && n % every === 0) {
    rotations++
    if (rotate === "rename") {
      renameSync(file!, `${file}.${rotations}`)
      // The runtime writes to the renamed file until it reopens.
      for (let k = 1; k <= 2 && n + k < count; k++) writeSync(fd, lineOf(i + k))
      n += Math.min(2, count - 1 - n)
      closeSync(fd)
      fd = openSync(file!, "a")
    } else {
      copyFileSync(file!, `${file}.${rotations}`)
      ftruncateSync(fd, 0)
    }
  }
  // Pace to the rate, in steps of at least 5 ms.
  const due = started + ((n + 1) * 1000) / rate
  const ahead = due - Date.now()
  if (ahead >= 5) sleep(ahead)
}
closeSync(fd)
console.log(`done ${count}`)
