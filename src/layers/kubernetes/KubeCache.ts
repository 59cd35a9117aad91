/**
 * What logtrain follows in the cluster, shared by the Kubernetes datasource and the container log
 * input: deployments, statefulsets and daemonsets everywhere, and the pods of this node (all pods
 * when the node is not known), each a trimmed, live copy (see Informer).
 *
 * It also names a pod's logs (`naming`): the pod's top-level owner — pod → replicaset →
 * deployment, or its statefulset, daemonset — decides hostname and tag by the original's rules
 * (domain/Kubernetes). Replicasets are not followed (there are many, and they change often): the
 * few a node's pods belong to are read when first needed and remembered. When the API has no
 * answer, names come from the pod's name alone.
 */
import { Context, Effect, Layer } from "effect"
import { controllerOf, isAkkerisApp, type KubeObject, MultilineAnnotation, namingOf, type PodInfo, podInfoFromName } from "../../domain/Kubernetes.ts"
import * as Log from "../Log.ts"
import type { Readiness } from "../Readiness.ts"
import * as Informer from "./Informer.ts"
import { PodMetadata } from "./PodMetadata.ts"
import * as KubeApi from "./KubeApi.ts"
import * as KubeClient from "./KubeClient.ts"
import { type ResourceType, Resources } from "./KubeApi.ts"

export interface Options {
  /** Logs named the Akkeris way (`app-space`, `web.hash-id`). */
  readonly akkeris: boolean
  /** This node: only its pods are followed. */
  readonly nodeName?: string | undefined
}

export class KubeCache extends Context.Service<KubeCache, {
  readonly akkeris: boolean
  readonly deployments: Informer.Informer
  readonly statefulsets: Informer.Informer
  readonly daemonsets: Informer.Informer
  readonly pods: Informer.Informer
  /** The object whose settings name a pod's logs: its top-level owner, or the pod itself. */
  readonly topOwner: (pod: KubeObject) => Effect.Effect<KubeObject>
  /** How a pod's logs are named; from its name alone when the API does not know it. */
  readonly describe: (namespace: string, pod: string) => Effect.Effect<PodInfo>
}>()("logtrain/kubernetes/KubeCache") {}

/** Replicasets remembered (name → its controller); cleared when it grows past this. */
const MAX_REPLICASETS = 5000

export const layer = (options: Options): Layer.Layer<KubeCache, never, KubeApi.KubeApi | Readiness> =>
  Layer.effect(
    KubeCache,
    Effect.gen(function*() {
      const api = yield* KubeApi.KubeApi
      const deployments = yield* Informer.make(Resources.deployments)
      const statefulsets = yield* Informer.make(Resources.statefulsets)
      const daemonsets = yield* Informer.make(Resources.daemonsets)
      const pods = yield* Informer.make(
        Resources.pods,
        options.nodeName === undefined ? {} : { fieldSelector: `spec.nodeName=${options.nodeName}` }
      )
      if (options.nodeName === undefined) {
        yield* Log.warn("NODE_NAME is not set: following the pods of every node (set it from the downward API: spec.nodeName)")
      }
      const replicasets = new Map<string, KubeObject | null>()
      const followed: Record<string, Informer.Informer> = { Deployment: deployments, StatefulSet: statefulsets, DaemonSet: daemonsets }
      const kinds: Record<string, ResourceType> = {
        Deployment: Resources.deployments,
        StatefulSet: Resources.statefulsets,
        DaemonSet: Resources.daemonsets,
        ReplicaSet: Resources.replicasets
      }

      /** An owner by kind and name, from the cache or else the API; undefined if unknown or unreadable. */
      const owner = (kind: string, namespace: string, name: string): Effect.Effect<KubeObject | undefined> => {
        const cached = followed[kind]?.get(namespace, name)
        if (cached !== undefined) return Effect.succeed(cached)
        const resource = kinds[kind]
        if (resource === undefined) return Effect.succeed(undefined)
        const key = `${namespace}/${name}`
        if (kind === "ReplicaSet" && replicasets.has(key)) return Effect.succeed(replicasets.get(key) ?? undefined)
        return api.get(resource, namespace, name).pipe(
          Effect.tap((object) =>
            Effect.sync(() => {
              if (kind !== "ReplicaSet") return
              if (replicasets.size >= MAX_REPLICASETS) replicasets.clear()
              replicasets.set(key, object ?? null)
            })
          ),
          Effect.catch((error) =>
            Effect.as(Log.warn("cannot read a pod's owner; naming its logs from the pod", { owner: `${kind} ${key}`, error: error.message }), undefined)
          )
        )
      }

      const topOwner = (pod: KubeObject) =>
        Effect.gen(function*() {
          let top = pod
          // pod → replicaset → deployment is the deepest chain the original follows (and there is).
          for (let depth = 0; depth < 3; depth++) {
            const ref = controllerOf(top)
            if (ref === undefined) break
            const next = yield* owner(ref.kind, top.namespace, ref.name)
            if (next === undefined) break
            top = next
          }
          return top
        })

      return KubeCache.of({
        akkeris: options.akkeris,
        deployments,
        statefulsets,
        daemonsets,
        pods,
        topOwner,
        describe: (namespace, name) =>
          Effect.gen(function*() {
            // A pod just started may not have reached the watch yet: ask for it.
            const pod = pods.get(namespace, name) ??
              (yield* api.get(Resources.pods, namespace, name).pipe(Effect.orElseSucceed(() => undefined)))
            if (pod === undefined) return podInfoFromName(namespace, name, options.akkeris)
            const top = yield* topOwner(pod)
            // The pod's own multiline annotation, else its owner's.
            const multiline = pod.annotations[MultilineAnnotation] ?? top.annotations[MultilineAnnotation]
            return {
              naming: namingOf(pod, top, options.akkeris),
              known: true,
              akkerisApp: isAkkerisApp(pod, top),
              ...(multiline === undefined ? {} : { multiline })
            }
          })
      })
    })
  )

/** The cache with its own API client (configured from `kubeconfig`, else the defaults). */
export const layerWithApi = (options: Options & KubeClient.Options) =>
  layer(options).pipe(Layer.provideMerge(KubeClient.layer({ kubeconfig: options.kubeconfig })))

/** Pod metadata for the container log input, from this cache. */
export const podMetadata: Layer.Layer<PodMetadata, never, KubeCache> = Layer.effect(
  PodMetadata,
  Effect.map(KubeCache, (cache) => PodMetadata.of({ describe: cache.describe }))
)
