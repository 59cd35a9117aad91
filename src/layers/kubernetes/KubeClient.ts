/**
 * The KubeApi for a configuration: the lean HTTPS client (KubeHttp) for a service account or a
 * kubeconfig it can use directly, `@kubernetes/client-node` (KubeApiClientNode) only for a kubeconfig
 * whose user logs in through a plugin. Apart from KubeApi.ts so that the service and its two
 * implementations import one way: each implementation imports the service, this imports them all.
 */
import { Effect, Layer } from "effect"
import { KubeApi, KubeError } from "./KubeApi.ts"
import * as ConfigSource from "./KubeConfigSource.ts"
import * as KubeConnection from "./KubeConnection.ts"

export interface Options {
  /** A kubeconfig file; otherwise KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  readonly kubeconfig?: string | undefined
}

export const layer = (options: Options) =>
  Layer.effect(
    KubeApi,
    Effect.gen(function*() {
      const source = ConfigSource.find(options.kubeconfig)
      if (source === undefined) return yield* new KubeError({ reason: "Config", detail: ConfigSource.noCluster })
      const connection = yield* Effect.tryPromise({
        try: () => KubeConnection.resolve(source),
        catch: (error) => new KubeError({ reason: "Config", detail: `cannot load the configuration: ${(error as Error).message}` })
      })
      if (connection._tag === "NeedsPlugin") {
        const ClientNode = yield* Effect.promise(() => import("./KubeApiClientNode.ts"))
        return yield* ClientNode.make(source)
      }
      const KubeHttp = yield* Effect.promise(() => import("./KubeHttp.ts"))
      return yield* KubeHttp.make(connection)
    })
  )
