/**
 * `stdout://`: one line per packet on standard output, like Fluent Bit's stdout and Vector's
 * console sinks, for demos and debugging.
 *
 * `stdout://` writes `<RFC 3339 time> <hostname>[<tag>]: <message>` (the Deis log format);
 * `stdout://?format=json` writes one JSON object per line; `stdout://?format=rfc5424` the syslog
 * line. Writes wait for the stream to take the data, so a slow reader of our output slows this
 * drain down (and, past its buffer, makes it drop) instead of growing memory.
 */
import { Context, Effect } from "effect"
import type { Writable } from "node:stream"
import type { StdoutDrainUrl } from "../../domain/DrainUrl.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as Rfc5424 from "../../domain/syslog/Rfc5424.ts"
import { DrainError } from "./DrainError.ts"
import type { DrainSink } from "./DrainSink.ts"

/** Where `stdout://` writes; tests swap it for a stream they read. */
export const StdoutStream = Context.Reference<Writable>("logtrain/drains/StdoutStream", {
  defaultValue: () => process.stdout
})

export type StdoutFormat = StdoutDrainUrl["format"]

const brokenPipeHandled = new WeakSet<Writable>()

const oneLine = (s: string): string => (/[\r\n]/.test(s) ? s.replace(/\r?\n|\r/g, "\\n") : s)

export const formatLine = (packet: LogPacket, format: StdoutFormat): string => {
  switch (format) {
    case "json":
      return `${
        JSON.stringify({
          time: Rfc5424.formatTimestamp(packet.time),
          hostname: packet.hostname,
          tag: packet.tag,
          severity: packet.severity,
          facility: packet.facility,
          message: packet.message
        })
      }\n`
    case "rfc5424":
      return `${oneLine(Rfc5424.format(packet))}\n`
    case "text":
      return `${Rfc5424.formatTimestamp(packet.time)} ${packet.hostname}[${packet.tag}]: ${oneLine(packet.message)}\n`
  }
}

export const make = (url: StdoutDrainUrl): Effect.Effect<DrainSink, DrainError> =>
  Effect.gen(function*() {
    const format = url.format
    const stream = yield* StdoutStream
    // A broken pipe makes the stream emit "error", which would end the process if nobody listened.
    // Each write reports its own failure to the drain (which retries, then drops when full).
    if (!brokenPipeHandled.has(stream)) {
      brokenPipeHandled.add(stream)
      stream.on("error", () => {})
    }
    return {
      // Lines from several workers would interleave unpredictably; one is plenty for a console.
      maxWorkers: 1,
      sender: Effect.succeed({
        send: (batch) =>
          Effect.callback<void, DrainError>((resume) => {
            let text = ""
            for (const packet of batch) text += formatLine(packet, format)
            stream.write(text, (error) =>
              resume(
                error
                  ? Effect.fail(new DrainError({ reason: "Write", drain: url.display, detail: error.message }))
                  : Effect.void
              ))
          })
      })
    } satisfies DrainSink
  })
