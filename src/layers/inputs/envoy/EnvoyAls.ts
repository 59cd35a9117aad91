/**
 * Envoy / Istio access logs over gRPC (`ENVOY=true`, port `ENVOY_PORT`, 9001): the access-log
 * service `StreamAccessLogs`, under both names meshes use — `envoy.service.accesslog.v3` (Istio
 * 1.9.1+) and `envoy.service.accesslog.v2` (older; the original served only this one). The two
 * carry the same messages on the wire.
 *
 * Each HTTP or TCP entry becomes one packet named after the service its upstream cluster names
 * (see domain/EnvoyAccessLog.ts); entries of clusters that name no service are counted
 * (`logtrain_input_skipped_total{reason="no_service"}`), not routed.
 *
 * A stream is read one message at a time: the next is not taken from gRPC until the packets of the
 * last are queued to the router, so a saturated logtrain holds senders back through HTTP/2 flow
 * control instead of buffering. A client that goes away, or sends what cannot be decoded, ends
 * its own stream only. This module loads gRPC; logtrain imports it only when `ENVOY=true`.
 */
import * as Grpc from "@grpc/grpc-js"
import * as ProtoLoader from "@grpc/proto-loader"
import { Clock, Data, Deferred, Duration, Effect, FiberSet, Layer } from "effect"
import { join } from "node:path"
import * as EnvoyAccessLog from "../../../domain/EnvoyAccessLog.ts"
import type { LogPacket } from "../../../domain/LogPacket.ts"
import { Ingest } from "../../routing/Ingest.ts"
import * as Log from "../../Log.ts"
import { Readiness } from "../../Readiness.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as InputStats from "../InputStats.ts"

export interface Options {
  readonly host: string
  readonly port: number
  readonly akkeris: boolean
}

export class EnvoyListenError extends Data.TaggedError("EnvoyListenError")<{ readonly message: string }> {}

/** A decoded `StreamAccessLogsMessage` (proto-loader objects: absent fields are undefined). */
export interface StreamAccessLogsMessage {
  readonly identifier?: { readonly node?: { readonly id?: string; readonly cluster?: string }; readonly log_name?: string }
  readonly http_logs?: { readonly log_entry?: ReadonlyArray<EnvoyAccessLog.HttpEntry> }
  readonly tcp_logs?: { readonly log_entry?: ReadonlyArray<EnvoyAccessLog.TcpEntry> }
}

/** Where the .proto files are: next to this module (copied next to the bundle by the build). */
export const protoDir = (): string => process.env.LOGTRAIN_PROTO_DIR ?? join(import.meta.dirname, "proto")

/** The service definitions, v3 and v2, from the .proto subset shipped with logtrain. */
export const services = (): { readonly v3: Grpc.ServiceDefinition; readonly v2: Grpc.ServiceDefinition } => {
  const definition = ProtoLoader.loadSync(["als-v3.proto", "als-v2.proto"], {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: false,
    oneofs: true,
    includeDirs: [protoDir()]
  })
  return {
    v3: definition["envoy.service.accesslog.v3.AccessLogService"] as Grpc.ServiceDefinition,
    v2: definition["envoy.service.accesslog.v2.AccessLogService"] as Grpc.ServiceDefinition
  }
}

const SHUTDOWN_GRACE = Duration.seconds(1)

type Call = Grpc.ServerReadableStream<StreamAccessLogsMessage, Record<string, never>>

export const layer = (options: Options): Layer.Layer<never, EnvoyListenError, Ingest | Readiness> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const ingest = yield* Ingest
    const check = yield* (yield* Readiness).register("input:envoy")
    const stats = yield* InputStats.make("envoy")
    let noService = 0
    let streams = 0
    yield* Telemetry.counter("logtrain_input_skipped_total", "Entries left out: their upstream cluster names no service.", {
      input: "envoy",
      reason: "no_service"
    }, () => noService)
    yield* Telemetry.counter("logtrain_envoy_streams_total", "Access-log streams opened.", {}, () => streams)

    const naming = { akkeris: options.akkeris }
    const run = yield* FiberSet.makeRuntime<never>()

    const stream = (call: Call, done: Grpc.sendUnaryData<Record<string, never>>) =>
      Effect.gen(function*() {
        streams++
        stats.connections++
        yield* Effect.addFinalizer(() => Effect.sync(() => stats.connections--))
        const peer = call.getPeer()
        const cancelled = yield* Deferred.make<void>()
        call.once("cancelled", () => Deferred.doneUnsafe(cancelled, Effect.void))
        const messages = call[Symbol.asyncIterator]() as AsyncIterator<StreamAccessLogsMessage>
        const next = Effect.raceFirst(
          Effect.tryPromise({ try: () => messages.next(), catch: (cause) => cause }),
          Effect.as(Deferred.await(cancelled), "cancelled" as const)
        )
        while (true) {
          const result = yield* Effect.result(next)
          if (result._tag === "Failure") {
            // A broken stream (gRPC has answered the client, or cannot): it ends here.
            yield* Log.debug("Envoy access-log stream ended", { peer, reason: errorText(result.failure) })
            return
          }
          if (result.success === "cancelled") return
          if (result.success.done === true) {
            done(null, {})
            return
          }
          const message = result.success.value
          const now = new Date(yield* Clock.currentTimeMillis)
          const packets: Array<LogPacket> = []
          const http = message.http_logs?.log_entry ?? []
          const tcp = message.tcp_logs?.log_entry ?? []
          noService += EnvoyAccessLog.toPackets(http, EnvoyAccessLog.formatHttp, naming, now, packets)
          noService += EnvoyAccessLog.toPackets(tcp, EnvoyAccessLog.formatTcp, naming, now, packets)
          stats.records += packets.length
          yield* Effect.uninterruptible(ingest.offer(packets))
        }
      }).pipe(Effect.scoped)

    const handler = (call: Call, done: Grpc.sendUnaryData<Record<string, never>>) => {
      run(stream(call, done))
    }
    // Decoding is gRPC's; wrapped to count bytes, and the messages that cannot be decoded (gRPC
    // answers those with INTERNAL and ends the stream).
    const counted = (definition: Grpc.ServiceDefinition): Grpc.ServiceDefinition =>
      Object.fromEntries(Object.entries(definition).map(([name, method]) => [name, {
        ...method,
        requestDeserialize: (bytes: Buffer) => {
          stats.bytes += bytes.length
          try {
            return method.requestDeserialize(bytes)
          } catch (error) {
            stats.malformed++
            stats.lastMalformed = { message: `a message of ${bytes.length} bytes: ${errorText(error)}` }
            throw error
          }
        }
      }]))
    const definitions = services()
    const server = new Grpc.Server()
    server.addService(counted(definitions.v3), { StreamAccessLogs: handler })
    server.addService(counted(definitions.v2), { StreamAccessLogs: handler })
    const address = options.host.includes(":") ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`
    const port = yield* Effect.callback<number, EnvoyListenError>((resume) => {
      server.bindAsync(address, Grpc.ServerCredentials.createInsecure(), (error, port) => {
        resume(
          error === null
            ? Effect.succeed(port)
            : Effect.fail(new EnvoyListenError({ message: `cannot listen on ${address}: ${error.message}` }))
        )
      })
    })
    // Added after the FiberSet, so it runs first: no new streams, a moment for open ones to end,
    // then they are cut (Envoy keeps a stream open for as long as it can, and reconnects).
    yield* Effect.addFinalizer(() =>
      Effect.callback<void>((resume) => {
        server.tryShutdown(() => resume(Effect.void))
      }).pipe(
        Effect.timeoutOption(SHUTDOWN_GRACE),
        Effect.andThen(Effect.sync(() => server.forceShutdown()))
      )
    )
    yield* check.ready
    yield* Log.info("Envoy access-log service listening", { port, services: "envoy.service.accesslog.v3, v2" })
  }))

const errorText = (error: unknown): string => error instanceof Error ? error.message : String(error)
