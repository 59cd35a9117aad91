import { Effect, Layer } from "effect"
import { Writable } from "node:stream"
import { StdoutStream } from "../../../src/layers/drains/stdout.ts"
import { runDrainCompliance } from "./compliance.ts"

/**
 * Standard output whose reader can stall, as a pipe does when nobody reads it: writes then wait,
 * and are taken once it reads again.
 */
const output = {
  lines: [] as Array<string>,
  stalled: false,
  waiting: [] as Array<() => void>
}
const stream = new Writable({
  highWaterMark: 1,
  write(chunk: Buffer, _encoding, callback) {
    const take = () => {
      output.lines.push(...chunk.toString("utf8").split("\n").filter((l) => l.length > 0))
      callback()
    }
    if (output.stalled) output.waiting.push(take)
    else take()
  }
})

runDrainCompliance({
  kind: "stdout",
  guarantees: { resendsAfterOutage: true, rejects: false },
  layer: Layer.succeed(StdoutStream, stream),
  receiver: (secret) =>
    Effect.sync(() => {
      output.lines.length = 0
      output.stalled = false
      return {
        url: `stdout://?format=json&token=${secret}`,
        received: () => output.lines.map((line) => JSON.parse(line).message as string),
        down: Effect.sync(() => {
          output.stalled = true
        }),
        up: Effect.sync(() => {
          output.stalled = false
          for (const take of output.waiting.splice(0)) take()
        })
      }
    })
})
