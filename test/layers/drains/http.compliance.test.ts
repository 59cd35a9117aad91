import { Effect } from "effect"
import { certificates } from "../../helpers/certs.ts"
import * as HttpReceiver from "../../helpers/HttpReceiver.ts"
import { runDrainCompliance } from "./compliance.ts"

/** Messages in JSON bodies: an array, NDJSON, or one object. */
const messagesOf = (receiver: HttpReceiver.HttpReceiver) =>
  receiver.requests.flatMap((request) => {
    const body = request.body.trim()
    const objects: Array<{ message: string }> = body.startsWith("[")
      ? JSON.parse(body)
      : body.split("\n").map((line) => JSON.parse(line))
    return objects.map((o) => o.message)
  })

const target = (scheme: "http" | "https", format: "array" | "ndjson" | "single") => (secret: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      HttpReceiver.listen(scheme === "https" ? { tls: { cert: certificates().serverCert, key: certificates().serverKey } } : {})
    ),
    (receiver) => Effect.promise(() => receiver.stop())
  ).pipe(Effect.map((receiver) => ({
    url: `${scheme}://admin:${secret}@localhost:${receiver.port}/ingest?format=${format}&token=${secret}` +
      (scheme === "https" ? "&insecure=true" : ""),
    received: () => messagesOf(receiver),
    down: Effect.promise(() => receiver.stop()),
    up: Effect.promise(() => receiver.start()),
    reject: (on: boolean) =>
      Effect.sync(() => {
        receiver.status = on ? 400 : 200
      })
  })))

for (const format of ["array", "ndjson", "single"] as const) {
  runDrainCompliance({ kind: `http (${format})`, guarantees: { resendsAfterOutage: true, rejects: true }, receiver: target("http", format) })
}
runDrainCompliance({ kind: "https (array, insecure)", guarantees: { resendsAfterOutage: true, rejects: true }, receiver: target("https", "array") })
