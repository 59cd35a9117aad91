/**
 * What the container log input asks of Kubernetes: how to name a pod's logs, and whether it
 * belongs to an Akkeris app. From the cluster (KubeCache.podMetadata) when the API is there; from
 * the pod's name alone otherwise. This module does not load the Kubernetes client.
 */
import { Context, Effect, Layer } from "effect"
import { type PodInfo, podInfoFromName } from "../../domain/Kubernetes.ts"

export class PodMetadata extends Context.Service<PodMetadata, {
  readonly describe: (namespace: string, pod: string) => Effect.Effect<PodInfo>
}>()("logtrain/kubernetes/PodMetadata") {}

/** From pod names alone (no Kubernetes API). */
export const fromNames = (akkeris: boolean): Layer.Layer<PodMetadata> =>
  Layer.succeed(PodMetadata, PodMetadata.of({ describe: (namespace, pod) => Effect.succeed(podInfoFromName(namespace, pod, akkeris)) }))

