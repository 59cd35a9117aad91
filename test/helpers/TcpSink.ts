/**
 * A plain TCP syslog receiver (newline framing) for fault tests, with the faults a real one has:
 * it can read slowly (a pace in lines per second: it stops reading the socket when ahead, so the
 * sender feels TCP backpressure), stop reading while staying connected (a hung receiver), go away
 * (its connections destroyed, as a crashed receiver's kernel does) and come back on the same port.
 *
 * What a connection leaves unfinished when the sender ends it is kept as a line, as rsyslog does
 * with newline framing: a cut line shows. What a reset connection leaves is kept apart
 * (`resetFragments`): the receiver knows it is incomplete. What a connection leaves when the sink
 * itself goes away is dropped, as a crashed receiver drops it.
 *
 * Plain Node (no test framework): test/helpers/tcp-sink-process.ts runs it as a process of its own.
 */
import * as Net from "node:net"

export interface TcpSink {
  readonly port: number
  /** Whole lines received, from every connection, in the order they arrived. */
  readonly lines: Array<string>
  /** When each line of `lines` arrived (epoch ms). */
  readonly times: Array<number>
  /** Partial frames left by connections the sender reset. */
  readonly resetFragments: Array<string>
  /** Connections accepted so far. */
  readonly connections: () => number
  /** Reads at most this many lines per second from now on (undefined: as fast as it can). */
  pace(linesPerSecond: number | undefined): void
  /** Stops reading (connections stay open, new ones are accepted and not read). */
  pause(): void
  /** Reads again. */
  resume(): void
  /** Goes away: stops listening and destroys its connections (what they hold is lost, as in a crash). */
  stop(): Promise<void>
  /** Listens again on the same port. */
  start(): Promise<void>
  /** Resolves once `n` lines have arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs: number): Promise<void>
}

export interface SinkOptions {
  /** Called with each batch of whole lines as it arrives (before they are added to `lines`). */
  readonly onLines?: (lines: ReadonlyArray<string>) => void
  /** Keep no lines in memory (a process that writes them elsewhere). */
  readonly keep?: boolean
}

export const listen = async (port: number, options: SinkOptions = {}): Promise<TcpSink> => {
  const keep = options.keep ?? true
  const lines: Array<string> = []
  const times: Array<number> = []
  const resetFragments: Array<string> = []
  /** Per connection: waiting for the pace, its unfinished frame, and whether the sink itself is ending it. */
  interface Connection {
    waiting: boolean
    timer?: ReturnType<typeof setTimeout> | undefined
    partial: string
    ours: boolean
  }
  const sockets = new Map<Net.Socket, Connection>()
  let server: Net.Server | undefined
  let accepted = 0
  let stalled = false
  let rate: number | undefined
  let pacedFrom = 0
  let pacedLines = 0

  const add = (batch: Array<string>) => {
    if (batch.length === 0) return
    options.onLines?.(batch)
    pacedLines += batch.length
    if (!keep) return
    const now = Date.now()
    for (const line of batch) {
      lines.push(line)
      times.push(now)
    }
  }

  const onConnection = (socket: Net.Socket) => {
    accepted++
    const state: Connection = { waiting: false, partial: "", ours: false }
    sockets.set(socket, state)
    if (stalled) socket.pause()
    socket.on("data", (chunk: Buffer) => {
      const parts = (state.partial + chunk.toString("latin1")).split("\n")
      state.partial = parts.pop()!
      add(parts)
      if (rate === undefined) return
      // Ahead of the pace: stop reading until the pace catches up (the sender's writes back up).
      const due = pacedFrom + (pacedLines / rate) * 1000
      const wait = due - Date.now()
      if (wait <= 2) return
      socket.pause()
      state.waiting = true
      state.timer = setTimeout(() => {
        state.waiting = false
        if (!stalled) socket.resume()
      }, wait)
    })
    socket.on("end", () => {
      // The sender closed: an unfinished frame is all a receiver gets of that line.
      if (state.partial !== "" && !state.ours) add([state.partial])
      state.partial = ""
    })
    socket.on("error", () => {
      if (state.partial !== "" && !state.ours) resetFragments.push(state.partial)
      state.partial = ""
    })
    socket.on("close", () => {
      clearTimeout(state.timer)
      sockets.delete(socket)
    })
  }

  const sink: TcpSink = {
    port,
    lines,
    times,
    resetFragments,
    connections: () => accepted,
    pace: (linesPerSecond) => {
      rate = linesPerSecond
      pacedFrom = Date.now()
      pacedLines = 0
    },
    pause: () => {
      stalled = true
      for (const socket of sockets.keys()) socket.pause()
    },
    resume: () => {
      stalled = false
      if (rate !== undefined) {
        pacedFrom = Date.now()
        pacedLines = 0
      }
      for (const [socket, state] of sockets) {
        // What Node read ahead while paused is taken first, connection by connection (oldest
        // first), as a receiver that had read it would have: not interleaved by event order.
        // (read() hands each chunk to the 'data' listener.)
        while (socket.read() !== null);
        if (!state.waiting) socket.resume()
      }
    },
    start: () =>
      new Promise((resolve, reject) => {
        // Back from an outage: at its pace from now, not with what it did not read meanwhile.
        pacedFrom = Date.now()
        pacedLines = 0
        server = Net.createServer(onConnection)
        server.once("error", reject)
        server.listen(port, "127.0.0.1", () => resolve())
      }),
    stop: () =>
      new Promise((resolve) => {
        for (const [socket, state] of sockets) {
          state.ours = true
          socket.destroy()
        }
        if (server === undefined) return resolve()
        server.close(() => resolve())
        server = undefined
      }),
    waitFor: async (n, timeoutMs) => {
      const deadline = Date.now() + timeoutMs
      while (lines.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} lines, got ${lines.length}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    }
  }
  await sink.start()
  return sink
}
