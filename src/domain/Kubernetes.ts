/**
 * Kubernetes as logtrain sees it: objects trimmed to what it reads, the annotations that make
 * routes, and the rules — the original's, exactly — that name a pod's logs (hostname and tag).
 *
 * Annotations: `logtrain.akkeris.io/drains` (drain URLs), `logtrain.akkeris.io/hostname` and
 * `logtrain.akkeris.io/tag` (overrides), `logtrain.akkeris.io/rate-limit` and
 * `logtrain.akkeris.io/multiline` (per-app controls). Labels (Akkeris mode): `akkeris.io/app-name`,
 * `akkeris.io/dyno-type`, `akkeris.io/oneoff`.
 */

export const DrainsAnnotation = "logtrain.akkeris.io/drains"
export const HostnameAnnotation = "logtrain.akkeris.io/hostname"
export const TagAnnotation = "logtrain.akkeris.io/tag"
/** Per-app controls: a token bucket (`500/s,burst=2000`) and multiline joining (`java`, `regex:…`). */
export const RateLimitAnnotation = "logtrain.akkeris.io/rate-limit"
export const MultilineAnnotation = "logtrain.akkeris.io/multiline"
export const AppNameLabel = "akkeris.io/app-name"
export const DynoTypeLabel = "akkeris.io/dyno-type"
export const OneOffLabel = "akkeris.io/oneoff"

export type Kind = "Pod" | "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Namespace"

export interface OwnerReference {
  readonly kind: string
  readonly name: string
  readonly uid: string
  readonly controller: boolean
}

/** An object with only what logtrain reads: everything else is dropped on arrival. */
export interface KubeObject {
  readonly kind: Kind
  readonly name: string
  readonly namespace: string
  readonly uid: string
  readonly owners: ReadonlyArray<OwnerReference>
  /** `akkeris.io/*` labels only. */
  readonly labels: Readonly<Record<string, string>>
  /** `logtrain.akkeris.io/*` annotations only. */
  readonly annotations: Readonly<Record<string, string>>
  /** Pods: the node they run on. */
  readonly nodeName?: string | undefined
}

const pick = (record: unknown, prefix: string): Record<string, string> => {
  const out: Record<string, string> = {}
  if (typeof record !== "object" || record === null) return out
  for (const [key, value] of Object.entries(record)) {
    if (key.startsWith(prefix) && typeof value === "string") out[key] = value
  }
  return out
}

/** The trimmed form of an API object (as JSON), or undefined if it lacks a name. */
export const trim = (kind: Kind, raw: unknown): KubeObject | undefined => {
  const metadata = (raw as { metadata?: Record<string, unknown> } | undefined)?.metadata
  if (metadata === undefined || typeof metadata.name !== "string") return undefined
  const owners = Array.isArray(metadata.ownerReferences)
    ? metadata.ownerReferences.flatMap((ref: Record<string, unknown>) =>
      typeof ref.kind === "string" && typeof ref.name === "string"
        ? [{ kind: ref.kind, name: ref.name, uid: String(ref.uid ?? ""), controller: ref.controller === true }]
        : []
    )
    : []
  const nodeName = (raw as { spec?: { nodeName?: unknown } }).spec?.nodeName
  return {
    kind,
    name: metadata.name,
    namespace: typeof metadata.namespace === "string" ? metadata.namespace : "",
    uid: String(metadata.uid ?? `${kind}/${metadata.namespace}/${metadata.name}`),
    owners,
    labels: pick(metadata.labels, "akkeris.io/"),
    annotations: pick(metadata.annotations, "logtrain.akkeris.io/"),
    ...(typeof nodeName === "string" ? { nodeName } : {})
  }
}

/**
 * The drain URLs of an annotation. The original's README says comma-separated and its code split
 * on `;`: both work. A comma splits only where a new URL starts (`, scheme://`), so a comma inside
 * a URL survives.
 */
export const parseDrains = (annotation: string | undefined): ReadonlyArray<string> => {
  if (annotation === undefined) return []
  return annotation
    .split(";")
    .flatMap((part) => part.split(/,(?=\s*[a-zA-Z][a-zA-Z0-9+.-]*:\/\/)/))
    .map((url) => url.trim())
    .filter((url) => url.length > 0)
}

/** The hostname routes of an object are for: its annotation, else `name.namespace` (`name-namespace` for Akkeris). */
export const hostnameOf = (obj: KubeObject, akkeris: boolean): string =>
  obj.annotations[HostnameAnnotation] ?? (akkeris ? `${obj.name}-${obj.namespace}` : `${obj.name}.${obj.namespace}`)

export interface Naming {
  readonly hostname: string
  readonly tag: string
}

/** The Akkeris tag from a pod name: `<dyno type>.<pod id>` where the id is the last two parts. */
const akkerisTag = (parts: ReadonlyArray<string>): string => {
  if (parts.length < 2) return ""
  const podId = parts.slice(-2).join("-")
  const appAndDyno = splitOnce(parts.slice(0, -2).join("-"), "--")
  return `${appAndDyno[1] ?? "web"}.${podId}`
}

const splitOnce = (text: string, separator: string): [string, string?] => {
  const at = text.indexOf(separator)
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + separator.length)]
}

/**
 * Names from a pod's name alone, for when the API has no answer: the name without its last two
 * parts (the replicaset hash and the pod suffix) is the workload. Akkeris: `app--dyno-hash-id`
 * gives hostname `app-namespace` and tag `dyno.hash-id` (`web` when there is no `--dyno`).
 * A name of fewer than three parts (e.g. a statefulset's `web-0`) keeps its whole name as the
 * workload rather than an empty one (the original produced `.namespace`).
 */
export const namingFromPodName = (pod: string, namespace: string, akkeris: boolean): Naming => {
  const parts = pod.split("-")
  if (akkeris) {
    if (parts.length < 2) return { hostname: pod, tag: "" }
    const appAndDyno = splitOnce(parts.slice(0, -2).join("-"), "--")
    return { hostname: `${appAndDyno[0]}-${namespace}`, tag: `${appAndDyno[1] ?? "web"}.${parts.slice(-2).join("-")}` }
  }
  const workload = parts.length < 3 ? pod : parts.slice(0, -2).join("-")
  return { hostname: `${workload}.${namespace}`, tag: pod }
}

/**
 * Names of a pod's logs, from the pod and its top-level owner (the pod itself when it has none),
 * as the original derives them:
 *
 * 1. the owner's hostname annotation, with its tag annotation, else (Akkeris) the tag from the
 *    pod name, else the owner's name;
 * 2. Akkeris: a one-off (`akkeris.io/oneoff` label) is named after the pod (`pod-namespace`,
 *    `dyno.id`); with app-name and dyno-type labels, `app-namespace` and `dyno.id`; otherwise
 *    `owner-namespace` and the tag from the pod name;
 * 3. otherwise `owner.namespace` and the pod's name;
 * 4. the owner's tag annotation, when set, is the tag whatever the rest.
 */
export const namingOf = (pod: KubeObject, top: KubeObject, akkeris: boolean): Naming => {
  const naming = derivedNaming(pod, top, akkeris)
  // The original read the tag annotation only along with the hostname one; its README says it
  // sets the tag in any case, and so it does here.
  const tag = top.annotations[TagAnnotation]
  return tag === undefined ? naming : { hostname: naming.hostname, tag }
}

const derivedNaming = (pod: KubeObject, top: KubeObject, akkeris: boolean): Naming => {
  const parts = pod.name.split("-")
  const host = top.annotations[HostnameAnnotation]
  if (host !== undefined) {
    const tag = top.annotations[TagAnnotation]
    return { hostname: host, tag: tag ?? (akkeris ? akkerisTag(parts) : top.name) }
  }
  if (akkeris) {
    const podId = parts.slice(-2).join("-")
    const dynoType = top.labels[DynoTypeLabel]
    if (top.labels[OneOffLabel] !== undefined) {
      return { hostname: `${pod.name}-${pod.namespace}`, tag: `${dynoType ?? ""}.${podId}` }
    }
    const appName = top.labels[AppNameLabel]
    if (appName !== undefined && dynoType !== undefined) {
      return { hostname: `${appName}-${pod.namespace}`, tag: `${dynoType}.${podId}` }
    }
    return { hostname: `${top.name}-${pod.namespace}`, tag: akkerisTag(parts) }
  }
  return { hostname: `${top.name}.${pod.namespace}`, tag: pod.name }
}

/** The owner reference that controls an object, if any. */
export const controllerOf = (obj: KubeObject): OwnerReference | undefined => obj.owners.find((ref) => ref.controller)

/** Whether a drain URL may be routed from this kind of object: `persistent://` only from pods, as the original. */
export const allowedOn = (kind: Kind, endpoint: string): boolean =>
  kind === "Pod" || !endpoint.trim().toLowerCase().startsWith("persistent://")

/** Whether a pod belongs to an Akkeris app: it or its top-level owner has the app-name label. */
export const isAkkerisApp = (pod: KubeObject, top: KubeObject): boolean =>
  pod.labels[AppNameLabel] !== undefined || top.labels[AppNameLabel] !== undefined

/** What logtrain knows of a pod, for naming and filtering its logs. */
export interface PodInfo {
  readonly naming: Naming
  /** False when the API did not know the pod and the names come from its name alone. */
  readonly known: boolean
  /** Whether it belongs to an Akkeris app; undefined when unknown. */
  readonly akkerisApp: boolean | undefined
  /** Its multiline annotation (the pod's own, else its top-level owner's), if any. */
  readonly multiline?: string | undefined
}

/** What can be said of a pod from its name alone. */
export const podInfoFromName = (namespace: string, pod: string, akkeris: boolean): PodInfo => ({
  naming: namingFromPodName(pod, namespace, akkeris),
  known: false,
  akkerisApp: undefined
})
