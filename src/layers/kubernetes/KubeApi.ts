/**
 * The Kubernetes API, as much as logtrain needs: list and watch the workload kinds and pods, get
 * one object, patch annotations, and ask what this service account may do.
 *
 * The configuration comes from `--kube-config`, `KUBECONFIG`, `~/.kube/config` or the in-cluster
 * service account (KubeConfigSource, KubeConnection), and the requests go over plain HTTPS
 * (KubeHttp; KubeClient chooses). Only a kubeconfig whose user logs in through a plugin (exec, auth-provider: cloud
 * logins) loads `@kubernetes/client-node`, which runs those (KubeApiClientNode) — its code alone
 * costs ~86 MB of memory. Either way what is kept is trimmed (see domain/Kubernetes) the moment it
 * arrives: lists in pages of PAGE_SIZE, each trimmed before the next; watch events one by one.
 */
import { Context, Data, Effect } from "effect"
import { type Kind, type KubeObject, trim } from "../../domain/Kubernetes.ts"

export interface ResourceType {
  readonly kind: Kind
  readonly group: "" | "apps"
  readonly plural: string
}

export const Resources = {
  pods: { kind: "Pod", group: "", plural: "pods" },
  deployments: { kind: "Deployment", group: "apps", plural: "deployments" },
  statefulsets: { kind: "StatefulSet", group: "apps", plural: "statefulsets" },
  daemonsets: { kind: "DaemonSet", group: "apps", plural: "daemonsets" },
  replicasets: { kind: "ReplicaSet", group: "apps", plural: "replicasets" },
  /** Cluster-scoped: their drains annotation is the default of the workloads in them. */
  namespaces: { kind: "Namespace", group: "", plural: "namespaces" }
} as const satisfies Record<string, ResourceType>

export class KubeError extends Data.TaggedError("KubeError")<{
  /** Config: no usable configuration. Request: the API could not be reached. Status: it answered an error. Expired: 410, the resourceVersion is too old. */
  readonly reason: "Config" | "Request" | "Status" | "Expired"
  readonly status?: number | undefined
  readonly detail: string
}> {
  override get message(): string {
    return `kubernetes: ${this.detail}`
  }
}

export type WatchEvent =
  | { readonly type: "ADDED" | "MODIFIED" | "DELETED"; readonly object: KubeObject; readonly resourceVersion: string }
  | { readonly type: "BOOKMARK"; readonly resourceVersion: string }

/**
 * Objects per list page. Small on purpose: a page is held whole (text, then parsed) before it is
 * trimmed, and the process keeps the memory it grew to. Measured with 1500 deployments of ~7 KB
 * (npm run bench:kubernetes-memory, the bundle): the datasource cost 40.9 MB of RSS with pages of
 * 500, 22.5 MB with pages of 100.
 */
export const PAGE_SIZE = 100
/** The API server ends a watch after this long; it is then resumed from the last resourceVersion. */
export const WATCH_SECONDS = 300

export const pathOf = (resource: ResourceType): string =>
  `${resource.group === "" ? "/api/v1" : `/apis/${resource.group}/v1`}/${resource.plural}`

export class KubeApi extends Context.Service<KubeApi, {
  /** The API server's address. */
  readonly server: string
  readonly list: (
    resource: ResourceType,
    options?: { readonly fieldSelector?: string | undefined }
  ) => Effect.Effect<{ readonly objects: ReadonlyArray<KubeObject>; readonly resourceVersion: string }, KubeError>
  /** Streams events after `resourceVersion` until the server ends the watch; fails with Expired on 410. */
  readonly watch: (
    resource: ResourceType,
    options: { readonly resourceVersion: string; readonly fieldSelector?: string | undefined },
    onEvent: (event: WatchEvent) => void
  ) => Effect.Effect<void, KubeError>
  readonly get: (resource: ResourceType, namespace: string, name: string) => Effect.Effect<KubeObject | undefined, KubeError>
  /** A JSON merge patch of annotations (`null` removes one). */
  readonly patchAnnotations: (
    resource: ResourceType,
    namespace: string,
    name: string,
    annotations: Readonly<Record<string, string | null>>
  ) => Effect.Effect<void, KubeError>
  /** Whether this service account may `verb` the resource (a SelfSubjectAccessReview). */
  readonly allowed: (verb: string, resource: ResourceType) => Effect.Effect<boolean, KubeError>
}>()("logtrain/kubernetes/KubeApi") {}

/**
 * Every object of a list, page after page (each page trimmed before the next is asked for), and the
 * list's resourceVersion. `page(next)` fetches the page a continue token names (the first: none).
 */
export const listPages = <E>(
  kind: Kind,
  page: (next: string | undefined) => Effect.Effect<
    { readonly items: ReadonlyArray<unknown>; readonly resourceVersion?: string | undefined; readonly next?: string | undefined },
    E
  >
): Effect.Effect<{ readonly objects: ReadonlyArray<KubeObject>; readonly resourceVersion: string }, E> =>
  Effect.gen(function*() {
    const objects: Array<KubeObject> = []
    let next: string | undefined
    let resourceVersion = ""
    do {
      const fetched = yield* page(next)
      for (const item of fetched.items) {
        const object = trim(kind, item)
        if (object !== undefined) objects.push(object)
      }
      resourceVersion = fetched.resourceVersion ?? resourceVersion
      next = fetched.next || undefined
    } while (next !== undefined)
    return { objects, resourceVersion }
  })
