/**
 * `npm run bench:hot-paths`: the per-line work of the file tail and the TCP relay, in one process,
 * without I/O — decoding and joining CRI lines, reading octet-counted RFC 5424 frames into packets
 * (decoded, as the UDP and HTTP inputs do; as bytes, as the TCP input does), and encoding packets
 * for a syslog drain — as milliseconds per million (best of 7 rounds, after a warm-up round).
 *
 *   npm run bench:hot-paths
 *   SRC=/tmp/old/src npm run bench:hot-paths    # another checkout's sources, for an A/B:
 *                                               # git worktree add /tmp/old <rev>; run both, alternating
 *
 * Lines come as a busy node's files give them: a second shared by a thousand lines, 20 lines per
 * file in a row, 52 files, batches of 500 packets.
 */
import { join } from "node:path"

const src = process.env.SRC ?? join(import.meta.dirname, "../src")
const ContainerLog = await import(join(src, "domain/ContainerLog.ts"))
const LogPacket = await import(join(src, "domain/LogPacket.ts"))
const Syslog = await import(join(src, "layers/drains/syslog.ts"))
const Framing = await import(join(src, "domain/syslog/Framing.ts"))
const InputStats = await import(join(src, "layers/inputs/InputStats.ts"))

const best = (name: string, perMillion: number, round: () => void) => {
  round()
  let fastest = Number.POSITIVE_INFINITY
  for (let k = 0; k < 7; k++) {
    const start = process.hrtime.bigint()
    round()
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e6)
  }
  console.log(`${name.padEnd(36)} ${(fastest * perMillion).toFixed(0).padStart(6)} ms per million`)
}

const lines = Array.from({ length: 20_000 }, (_, n) =>
  `2026-01-01T00:00:${String(Math.floor(n / 1000) % 60).padStart(2, "0")}.123456789Z ${n % 9 === 0 ? "stderr" : "stdout"} F file ${
    Math.floor(n / 20) % 52
  } line ${String(n).padStart(7, "0")} ${"y".repeat(100)}`)
const joined: Array<unknown> = []
const joiner = new ContainerLog.LineJoiner(16_384, (line: unknown) => joined.push(line))
best("decode + join CRI lines", 1_000_000 / (50 * lines.length), () => {
  for (let r = 0; r < 50; r++) {
    for (const line of lines) joiner.push(ContainerLog.decodeLine(line), 0, 0)
    joined.length = 0
  }
})

// The relay's input: 64 KiB socket chunks of octet-counted RFC 5424 frames (as npm run bench's
// relay sends, but with microsecond times, each line its own millisecond), decoded and parsed.
const frames = Buffer.from(Array.from({ length: 20_000 }, (_, n) => {
  const line = `<134>1 2026-01-01T00:00:${String(Math.floor(n / 1000) % 60).padStart(2, "0")}.${String(n % 1000).padStart(3, "0")}${String(n % 7).padStart(3, "0")}Z bench.host app 1234 - - ${"x".repeat(120)} line ${String(n).padStart(9, "0")}`
  return `${Buffer.byteLength(line)} ${line}`
}).join(""))
const chunks = Array.from({ length: Math.ceil(frames.length / 65536) }, (_, k) => frames.subarray(k * 65536, (k + 1) * 65536))
const stats = { records: 0, malformed: 0, lastMalformed: undefined }
best("read frames + parse RFC 5424", 1_000_000 / (10 * 20_000), () => {
  for (let r = 0; r < 10; r++) {
    const decoder = new Framing.FrameDecoder({ maxFrameBytes: 65536 })
    for (const chunk of chunks) {
      const packets: Array<unknown> = []
      InputStats.parseLines(decoder.decode(chunk), new Date(), "", stats, packets)
    }
  }
})

// The same, as the TCP input reads them now: frames as byte strings, only the header parsed
// (Rfc5424Raw), and those packets' bytes framed for a syslog drain as they came.
let rawPackets: Array<unknown> = []
best("read frames as bytes + parse header", 1_000_000 / (10 * 20_000), () => {
  for (let r = 0; r < 10; r++) {
    const decoder = new Framing.FrameDecoder({ maxFrameBytes: 65536, bytes: true })
    rawPackets = []
    for (const chunk of chunks) {
      // Returns the packets (older sources, SRC=…, push them to the array given instead).
      const packets: unknown = InputStats.parseRawLines(decoder.decode(chunk), new Date(), "", stats, rawPackets)
      if (Array.isArray(packets)) for (const packet of packets) rawPackets.push(packet)
    }
  }
})
// The same for the relay benchmark's lines (npm run bench -- --only relay): one sender's, all with
// the same TIMESTAMP and HOSTNAME, which the parser then finds kept from the line before.
const relayFrames = Buffer.from(Array.from({ length: 20_000 }, (_, n) => {
  const line = `<134>1 2026-01-01T00:00:00.000000Z bench.host app 1234 - - ${"x".repeat(120)} line ${String(n).padStart(9, "0")}`
  return `${Buffer.byteLength(line)} ${line}`
}).join(""))
const relayChunks = Array.from({ length: Math.ceil(relayFrames.length / 65536) }, (_, k) => relayFrames.subarray(k * 65536, (k + 1) * 65536))
best("read the relay's frames + parse header", 1_000_000 / (10 * 20_000), () => {
  for (let r = 0; r < 10; r++) {
    const decoder = new Framing.FrameDecoder({ maxFrameBytes: 65536, bytes: true })
    for (const chunk of relayChunks) InputStats.parseRawLines(decoder.decode(chunk), new Date(), "", stats, [])
  }
})

const rawBatches = Array.from({ length: Math.ceil(rawPackets.length / 500) }, (_, b) => rawPackets.slice(b * 500, (b + 1) * 500))
best("encode those packets' bytes (newline)", 1_000_000 / (10 * rawPackets.length), () => {
  for (let r = 0; r < 10; r++) for (const batch of rawBatches) Syslog.encodeBatch(batch, "newline")
})

let time = 1_709_294_400_000
const batches = Array.from({ length: 200 }, (_, b) =>
  Array.from({ length: 500 }, (_, i) => {
    const app = Math.floor((b * 500 + i) / 20) % 52
    if (i % 7 === 0) time++
    return LogPacket.make({
      time: new Date(time),
      hostname: `app-${app}-space-${app % 40}`,
      tag: `app-${app}-5d8f7c-x2x9q`,
      message: `request ${i} served in 12ms ${"z".repeat(80)}`,
      severity: i % 5 === 0 ? 3 : 6
    })
  }))
for (const framing of ["newline", "octet-counting"] as const) {
  best(`encode packets (${framing})`, 1_000_000 / (10 * 200 * 500), () => {
    for (let r = 0; r < 10; r++) for (const batch of batches) Syslog.encodeBatch(batch, framing)
  })
}

// Per-app controls (logtrain.akkeris.io/rate-limit, /multiline).
const RateLimit = await import(join(src, "domain/RateLimit.ts"))
const LineReaderModule = await import(join(src, "domain/LineReader.ts"))
const Multiline = await import(join(src, "domain/Multiline.ts"))
// As the container log input does: regexes on V8's linear-time engine.
;(await import("node:v8")).setFlagsFromString("--enable-experimental-regexp-engine")

// The router's check per packet: a map lookup, and a token taken for the apps that have a limit
// (half of the 52 here, at a rate they exceed).
const buckets = new Map<string, { take(now: number): boolean }>()
for (let app = 0; app < 52; app += 2) buckets.set(`app-${app}-space-${app % 40}`, new RateLimit.TokenBucket(`app-${app}`, { perSecond: 1000, burst: 1000 }, 0))
let admitted = 0
best("rate limit check (26 of 52 apps limited)", 1_000_000 / (10 * 200 * 500), () => {
  for (let r = 0; r < 10; r++) {
    const now = time + r
    for (const batch of batches) {
      for (const packet of batch) {
        const bucket = buckets.get(packet.hostname)
        if (bucket === undefined || bucket.take(now)) admitted++
      }
    }
  }
})

// Reading CRI lines with and without multiline joining (java): events of a logged line and 9
// frames, as a Java service's error logs look; the difference is the joining's cost.
const javaLines = Array.from({ length: 20_000 }, (_, n) =>
  `2026-01-01T00:00:00.123456789Z stderr F ${
    n % 10 === 0 ? `2026-01-01 00:00:00.123 ERROR 1 --- [exec-${n % 7}] c.e.Service : request ${n} failed` : `\tat com.example.shop.Service.method${n % 10}(Service.java:${n % 500})`
  }\n`).join("")
const javaBytes = Buffer.from(javaLines)
const readAll = (multiline: unknown) => {
  const reader = new LineReaderModule.LineReader(0, { maxLineBytes: 16_384, multiline }, { line: () => {}, malformed: () => {} })
  for (let at = 0; at < javaBytes.length; at += 65_536) reader.feed(javaBytes.subarray(at, at + 65_536), 0)
  reader.endOfFile()
}
const javaRule = Multiline.parse("java")
const regexRule = Multiline.parse("regex:^\\d{4}-\\d{2}-\\d{2} ")
best("read CRI lines (no multiline)", 1_000_000 / (10 * 20_000), () => {
  for (let r = 0; r < 10; r++) readAll(undefined)
})
best("read CRI lines + multiline java", 1_000_000 / (10 * 20_000), () => {
  for (let r = 0; r < 10; r++) readAll({ rule: javaRule, maxBytes: 65_536 })
})
best("read CRI lines + multiline regex", 1_000_000 / (10 * 20_000), () => {
  for (let r = 0; r < 10; r++) readAll({ rule: regexRule, maxBytes: 65_536 })
})
if (admitted === 0) console.log("(nothing admitted)")
