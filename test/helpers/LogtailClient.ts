/**
 * What tests of logtail as a process do from outside: send syslog over TCP, read /metrics, follow
 * a live tail as it streams, and wait for a condition.
 */
import { assert } from "@effect/vitest"
import * as Net from "node:net"
import type { LogtrainProcess } from "./LogtrainProcess.ts"

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export const until = async (condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** Sends octet-counted syslog lines over one TCP connection, then closes it. */
export const sendTcp = (port: number, lines: ReadonlyArray<string>, host = "127.0.0.1") =>
  new Promise<void>((resolve, reject) => {
    const socket = Net.createConnection({ host, port }, () => {
      socket.end(lines.map((l) => `${Buffer.byteLength(l)} ${l}`).join(""), () => resolve())
    })
    socket.once("error", reject)
  })

/** An RFC 5424 line of `host`. */
export const rfc5424 = (host: string, message: string, time = "2026-01-01T00:00:00.000Z") => `<14>1 ${time} ${host} web.1 - - - ${message}`

/** The sum of a metric's series (those whose labels contain `labels`, when given); NaN when unreachable. */
export const metric = async (httpPort: number, name: string, labels = "", host = "127.0.0.1"): Promise<number> => {
  const text = await fetch(`http://${host}:${httpPort}/metrics`).then((r) => r.text(), () => undefined)
  if (text === undefined) return Number.NaN
  let sum = 0
  for (const match of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+]+)$`, "gm"))) {
    if ((match[1] ?? "").includes(labels)) sum += Number(match[2])
  }
  return sum
}

/** Reads a streamed response line by line as it arrives. */
export const follow = async (url: string, signal: AbortSignal) => {
  const response = await fetch(url, { signal })
  const lines: Array<string> = []
  const done = (async () => {
    if (response.body === null) return
    let buffered = ""
    const decoder = new TextDecoder()
    try {
      for await (const chunk of response.body) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true })
        const parts = buffered.split("\n")
        buffered = parts.pop()!
        lines.push(...parts)
      }
    } catch {
      // aborted
    }
  })()
  return { response, lines, done }
}

/** Waits for /readyz of a process listening on `host` (not only 127.0.0.1). */
export const ready = async (host: string, port: number, process: LogtrainProcess) => {
  await until(async () => {
    if (process.child.exitCode !== null) throw new Error(`exited ${process.child.exitCode}: ${process.stderr()}`)
    return fetch(`http://${host}:${port}/readyz`).then((r) => r.ok, () => false)
  }, `${host}:${port} to be ready`, 20_000).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${process.stderr()}`)
  })
}

/** POST /tails on a replica: the tail's URL. */
export const createTail = async (base: string, hostname: string) => {
  const created = await fetch(`${base}/tails`, { method: "POST", body: JSON.stringify({ hostname }) })
  assert.strictEqual(created.status, 201, await created.clone().text())
  return ((await created.json()) as { url: string }).url
}

/** The tail URL made on one replica, opened on another (the Service may pick any). */
export const on = (url: string, base: string) => url.replace(/^http:\/\/[^/]+/, base)

/** The message part of received RFC 5424 lines (what follows `- - - `). */
export const messages = (lines: ReadonlyArray<string>) => lines.map((line) => line.slice(line.indexOf(" - - - ") + 7))

/** Per sender (`<sender>:<n>` messages), the numbers received, in the order received. */
export const bySender = (received: ReadonlyArray<string>) => {
  const senders = new Map<string, Array<number>>()
  for (const message of received) {
    const [sender, n] = message.split(":")
    if (n === undefined) continue
    const list = senders.get(sender!) ?? []
    list.push(Number(n))
    senders.set(sender!, list)
  }
  return senders
}

/** Lines of `app` whose messages are `<sender>:<n>`, n from `from`. */
export const numbered = (app: string, sender: string, from: number, count: number) =>
  Array.from({ length: count }, (_, i) => rfc5424(app, `${sender}:${from + i}`))
