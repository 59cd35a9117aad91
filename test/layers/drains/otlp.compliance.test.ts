import { Effect } from "effect"
import * as OtlpReceiver from "../../helpers/OtlpReceiver.ts"
import { runDrainCompliance } from "./compliance.ts"

const target = (encoding: "protobuf" | "json") => (secret: string) =>
  Effect.acquireRelease(Effect.promise(() => OtlpReceiver.listen()), (receiver) => Effect.promise(() => receiver.stop())).pipe(
    Effect.map((receiver) => ({
      url: `otlp+http://collector:${secret}@127.0.0.1:${receiver.port}/v1/logs?encoding=${encoding}&token=${secret}`,
      received: () => receiver.records().map((r) => String(r.body)),
      down: Effect.promise(() => receiver.stop()),
      up: Effect.promise(() => receiver.start()),
      reject: (on: boolean) =>
        Effect.sync(() => {
          receiver.answer = on ? { status: 400, message: "refused on purpose" } : undefined
        })
    }))
  )

runDrainCompliance({ kind: "otlp+http (protobuf)", guarantees: { resendsAfterOutage: true, rejects: true }, receiver: target("protobuf") })
runDrainCompliance({ kind: "otlp+http (json)", guarantees: { resendsAfterOutage: true, rejects: true }, receiver: target("json") })
