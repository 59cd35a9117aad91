import { Effect } from "effect"
import * as FakeLoki from "../../helpers/FakeLoki.ts"
import { runDrainCompliance } from "./compliance.ts"

const target = (secret: string) =>
  Effect.acquireRelease(Effect.promise(() => FakeLoki.listen()), (loki) => Effect.promise(() => loki.stop())).pipe(
    Effect.map((loki) => ({
      url: `loki+http://tenant1:${secret}@127.0.0.1:${loki.port}?tenant=${secret}`,
      received: () => loki.lines(),
      down: Effect.promise(() => loki.stop()),
      up: Effect.promise(() => loki.start()),
      reject: (on: boolean) =>
        Effect.sync(() => {
          loki.status = on ? 400 : 204
        })
    }))
  )

runDrainCompliance({ kind: "loki+http", guarantees: { resendsAfterOutage: true, rejects: true }, receiver: target })
