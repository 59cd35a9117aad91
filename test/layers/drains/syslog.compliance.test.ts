import { Effect } from "effect"
import { Buffer } from "node:buffer"
import type { LogPacket } from "../../../src/domain/LogPacket.ts"
import { FrameDecoder } from "../../../src/domain/syslog/Framing.ts"
import * as Syslog from "../../../src/domain/syslog/Syslog.ts"
import { caOption, certificates } from "../../helpers/certs.ts"
import * as HttpReceiver from "../../helpers/HttpReceiver.ts"
import { freePort } from "../../helpers/ports.ts"
import * as SyslogReceiver from "../../helpers/SyslogReceiver.ts"
import * as UdpReceiver from "../../helpers/UdpReceiver.ts"
import { runDrainCompliance } from "./compliance.ts"

const messagesOf = (lines: ReadonlyArray<string>) =>
  lines.map((line) => Syslog.parse(line, new Date())).filter((p): p is LogPacket => !Syslog.isParseError(p)).map((p) => p.message)

const tcp = (framing: "newline" | "octet-counting") => (secret: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => SyslogReceiver.listen(await freePort())),
    (receiver) => Effect.promise(() => receiver.stop())
  ).pipe(Effect.map((receiver) => ({
    url: `syslog+tcp://admin:${secret}@127.0.0.1:${receiver.port}?framing=${framing}&token=${secret}`,
    received: () => messagesOf(receiver.lines),
    down: Effect.promise(() => receiver.stop()),
    up: Effect.promise(() => receiver.start())
  })))

runDrainCompliance({
  kind: "syslog+tcp",
  guarantees: { resendsAfterOutage: true, rejects: false },
  receiver: tcp("newline")
})

runDrainCompliance({
  kind: "syslog+tcp (octet counting)",
  guarantees: { resendsAfterOutage: true, rejects: false },
  receiver: tcp("octet-counting")
})

runDrainCompliance({
  kind: "syslog+udp",
  guarantees: { resendsAfterOutage: false, rejects: false },
  receiver: (secret) =>
    Effect.acquireRelease(
      Effect.promise(async () => UdpReceiver.listen(await freePort())),
      (receiver) => Effect.promise(() => receiver.stop())
    ).pipe(Effect.map((receiver) => ({
      url: `syslog+udp://admin:${secret}@127.0.0.1:${receiver.port}?token=${secret}`,
      received: () => messagesOf(receiver.datagrams),
      down: Effect.promise(() => receiver.stop()),
      up: Effect.promise(() => receiver.start())
    })))
})

runDrainCompliance({
  kind: "syslog+tls",
  guarantees: { resendsAfterOutage: true, rejects: false },
  receiver: (secret) =>
    Effect.acquireRelease(
      Effect.promise(async () => {
        const certs = certificates()
        return SyslogReceiver.listen(await freePort(), { tls: { cert: certs.serverCert, key: certs.serverKey } })
      }),
      (receiver) => Effect.promise(() => receiver.stop())
    ).pipe(Effect.map((receiver) => ({
      url: `syslog+tls://admin:${secret}@localhost:${receiver.port}?ca=${caOption(certificates().ca)}&token=${secret}`,
      received: () => messagesOf(receiver.lines),
      down: Effect.promise(() => receiver.stop()),
      up: Effect.promise(() => receiver.start())
    })))
})

/** Messages in syslog-over-HTTP bodies: newline-separated lines, or logplex frames. */
const httpMessages = (receiver: HttpReceiver.HttpReceiver) =>
  receiver.requests.flatMap((request) => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20 })
    return messagesOf([...decoder.decode(Buffer.from(request.body)), ...decoder.end()])
  })

const syslogHttp = (scheme: "http" | "https", framing: "newline" | "octet-counting") => (secret: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      HttpReceiver.listen(scheme === "https" ? { tls: { cert: certificates().serverCert, key: certificates().serverKey } } : {})
    ),
    (receiver) => Effect.promise(() => receiver.stop())
  ).pipe(Effect.map((receiver) => ({
    url: `syslog+${scheme}://admin:${secret}@localhost:${receiver.port}/logs?token=${secret}&framing=${framing}` +
      (scheme === "https" ? `&ca=${caOption(certificates().ca)}` : ""),
    received: () => httpMessages(receiver),
    down: Effect.promise(() => receiver.stop()),
    up: Effect.promise(() => receiver.start()),
    reject: (on: boolean) =>
      Effect.sync(() => {
        receiver.status = on ? 400 : 200
      })
  })))

runDrainCompliance({
  kind: "syslog+http",
  guarantees: { resendsAfterOutage: true, rejects: true },
  receiver: syslogHttp("http", "newline")
})

runDrainCompliance({
  kind: "syslog+https (logplex frames)",
  guarantees: { resendsAfterOutage: true, rejects: true },
  receiver: syslogHttp("https", "octet-counting")
})
