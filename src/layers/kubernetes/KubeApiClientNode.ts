/**
 * The Kubernetes API through `@kubernetes/client-node`, for kubeconfigs whose user logs in with a
 * plugin (exec, auth-provider) that only the library runs. Loaded only then: its code costs ~86 MB.
 */
import {
  ApiException,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  Watch
} from "@kubernetes/client-node"
import { Effect } from "effect"
import { trim } from "../../domain/Kubernetes.ts"
import { KubeApi, KubeError, listPages, PAGE_SIZE, pathOf, type ResourceType, WATCH_SECONDS } from "./KubeApi.ts"
import type * as ConfigSource from "./KubeConfigSource.ts"

/** Loads the configuration from its source (see KubeConfigSource). */
const load = (config: KubeConfig, source: ConfigSource.ConfigSource): void => {
  switch (source._tag) {
    case "File":
      return config.loadFromFile(source.path)
    case "Env":
      return config.loadFromDefault()
    case "ServiceAccount":
      return config.loadFromCluster()
  }
}

type Page = { readonly items: ReadonlyArray<unknown>; readonly metadata?: { readonly _continue?: string | undefined; readonly resourceVersion?: string | undefined } | undefined }

export const make = (source: ConfigSource.ConfigSource): Effect.Effect<KubeApi["Service"], KubeError> =>
    Effect.gen(function*() {
      const config = new KubeConfig()
      yield* Effect.try({
        try: () => load(config, source),
        catch: (error) => new KubeError({ reason: "Config", detail: `cannot load the configuration: ${(error as Error).message}` })
      })
      const cluster = config.getCurrentCluster()
      if (cluster === null) return yield* new KubeError({ reason: "Config", detail: "the configuration names no cluster" })
      const server = cluster.server.replace(/\/$/, "")
      const core = config.makeApiClient(CoreV1Api)
      const apps = config.makeApiClient(AppsV1Api)
      const authorization = config.makeApiClient(AuthorizationV1Api)
      // The library ends a watch silent for 30 s (no event, no bookmark): it is then resumed.
      const watcher = new Watch(config)

      const listPage = (resource: ResourceType, params: { limit: number; _continue?: string; fieldSelector?: string }): Promise<Page> => {
        switch (resource.plural) {
          case "pods":
            return core.listPodForAllNamespaces(params)
          case "deployments":
            return apps.listDeploymentForAllNamespaces(params)
          case "statefulsets":
            return apps.listStatefulSetForAllNamespaces(params)
          case "daemonsets":
            return apps.listDaemonSetForAllNamespaces(params)
          default:
            return apps.listReplicaSetForAllNamespaces(params)
        }
      }

      const read = (resource: ResourceType, name: string, namespace: string): Promise<unknown> => {
        switch (resource.plural) {
          case "pods":
            return core.readNamespacedPod({ name, namespace })
          case "deployments":
            return apps.readNamespacedDeployment({ name, namespace })
          case "statefulsets":
            return apps.readNamespacedStatefulSet({ name, namespace })
          case "daemonsets":
            return apps.readNamespacedDaemonSet({ name, namespace })
          default:
            return apps.readNamespacedReplicaSet({ name, namespace })
        }
      }

      const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch)
      const patch = (resource: ResourceType, name: string, namespace: string, body: object): Promise<unknown> => {
        switch (resource.plural) {
          case "pods":
            return core.patchNamespacedPod({ name, namespace, body }, mergePatch)
          case "deployments":
            return apps.patchNamespacedDeployment({ name, namespace, body }, mergePatch)
          case "statefulsets":
            return apps.patchNamespacedStatefulSet({ name, namespace, body }, mergePatch)
          case "daemonsets":
            return apps.patchNamespacedDaemonSet({ name, namespace, body }, mergePatch)
          default:
            return apps.patchNamespacedReplicaSet({ name, namespace, body }, mergePatch)
        }
      }

      return KubeApi.of({
        server,
        list: (resource, listOptions) =>
          listPages(resource.kind, (next) =>
            Effect.map(
              request(`list ${resource.plural}`, () =>
                listPage(resource, {
                  limit: PAGE_SIZE,
                  ...(next === undefined ? {} : { _continue: next }),
                  ...(listOptions?.fieldSelector === undefined ? {} : { fieldSelector: listOptions.fieldSelector })
                })),
              (page: Page) => ({ items: page.items, resourceVersion: page.metadata?.resourceVersion, next: page.metadata?._continue })
            )),
        watch: (resource, watchOptions, onEvent) =>
          Effect.callback<void, KubeError>((resume) => {
            const what = `watch ${resource.plural}`
            let failed: KubeError | undefined
            let controller: AbortController | undefined
            let finished = false
            const callback = (type: string, object: unknown) => {
              if (failed !== undefined) return
              if (type === "ERROR") {
                const status = object as { code?: number; message?: string } | undefined
                failed = new KubeError({
                  reason: status?.code === 410 ? "Expired" : "Status",
                  status: status?.code,
                  detail: `${what}: ${status?.code ?? "?"} ${status?.message ?? ""}`.trim()
                })
                controller?.abort()
                return
              }
              const version = (object as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion ?? ""
              if (type === "BOOKMARK") {
                onEvent({ type: "BOOKMARK", resourceVersion: version })
              } else if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") {
                const trimmed = trim(resource.kind, object)
                if (trimmed !== undefined) onEvent({ type, object: trimmed, resourceVersion: version })
              }
            }
            const done = (error: unknown) => {
              if (finished) return
              finished = true
              if (failed !== undefined) resume(Effect.fail(failed))
              // An idle watch ended by the client's timeout is resumed like one the server ended.
              else if (error === null || error === undefined || (error as Error).name === "TimeoutError") resume(Effect.void)
              else resume(Effect.fail(failure(what, error)))
            }
            const query: Record<string, string | boolean | number> = {
              resourceVersion: watchOptions.resourceVersion,
              allowWatchBookmarks: true,
              timeoutSeconds: WATCH_SECONDS
            }
            if (watchOptions.fieldSelector !== undefined) query.fieldSelector = watchOptions.fieldSelector
            watcher.watch(pathOf(resource), query, callback, done).then(
              (started) => {
                controller = started
                if (finished || failed !== undefined) started.abort()
              },
              done
            )
            return Effect.sync(() => {
              finished = true
              controller?.abort()
            })
          }),
        get: (resource, namespace, name) =>
          request(`get ${resource.plural} ${namespace}/${name}`, () => read(resource, name, namespace)).pipe(
            Effect.map((object) => trim(resource.kind, object)),
            Effect.catchIf((error) => error.status === 404, () => Effect.succeed(undefined))
          ),
        patchAnnotations: (resource, namespace, name, annotations) =>
          Effect.asVoid(
            request(`patch ${resource.plural} ${namespace}/${name}`, () =>
              patch(resource, name, namespace, { metadata: { annotations } }))
          ),
        allowed: (verb, resource) =>
          Effect.map(
            request(`access review ${verb} ${resource.plural}`, () =>
              authorization.createSelfSubjectAccessReview({
                body: { spec: { resourceAttributes: { verb, group: resource.group, resource: resource.plural } } }
              })),
            (review) => review.status?.allowed === true
          )
      })
    })

/** A request through the client; its failures become KubeErrors (410 is Expired). */
const request = <A>(what: string, run: () => Promise<A>): Effect.Effect<A, KubeError> =>
  Effect.tryPromise({ try: run, catch: (error) => failure(what, error) })

/** A KubeError from whatever a request failed with. */
const failure = (what: string, error: unknown): KubeError => {
  if (error instanceof ApiException) {
    const code = error.code as number
    const body = typeof error.body === "string" ? safeJson(error.body) : error.body
    const message = (body as { message?: string } | undefined)?.message ?? ""
    return new KubeError({ reason: code === 410 ? "Expired" : "Status", status: code, detail: `${what}: ${code} ${message}`.trim() })
  }
  const status = (error as { statusCode?: unknown }).statusCode
  if (typeof status === "number") {
    return new KubeError({ reason: status === 410 ? "Expired" : "Status", status, detail: `${what}: ${status} ${(error as Error).message}` })
  }
  const cause = (error as { cause?: { message?: string } }).cause?.message
  return new KubeError({ reason: "Request", detail: `${what}: ${(error as Error).message}${cause === undefined ? "" : ` (${cause})`}` })
}

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return { message: text.slice(0, 200) }
  }
}
