/**
 * What tests of logtail as a process do from outside: send syslog over TCP, read /metrics, follow
 * a live tail as it streams, and wait for a condition.
 */
import * as Net from "node:net"

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export const until = async (condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** Sends octet-counted syslog lines over one TCP connection, then closes it. */
export const sendTcp = (port: number, lines: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const socket = Net.createConnection({ host: "127.0.0.1", port }, () => {
      socket.end(lines.map((l) => `${Buffer.byteLength(l)} ${l}`).join(""), () => resolve())
    })
    socket.once("error", reject)
  })

/** An RFC 5424 line of `host`. */
export const rfc5424 = (host: string, message: string, time = "2026-01-01T00:00:00.000Z") => `<14>1 ${time} ${host} web.1 - - - ${message}`

/** The sum of a metric's series (those whose labels contain `labels`, when given); NaN when unreachable. */
export const metric = async (httpPort: number, name: string, labels = ""): Promise<number> => {
  const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text(), () => undefined)
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
