/**
 * What logtrain and logtail ask the Kubernetes API for: the RBAC rules their service accounts
 * need, no more. deployments/kubernetes grants exactly these (a test holds the manifests, and
 * the requests the code makes, to them).
 */
export interface Rule {
  readonly apiGroup: string
  readonly resources: ReadonlyArray<string>
  readonly verbs: ReadonlyArray<string>
}

/** Following routes (annotations) and pod metadata: list + watch, and get for owners not cached. */
export const read: ReadonlyArray<Rule> = [
  // Namespaces: their drains annotation is the default of the workloads in them.
  { apiGroup: "", resources: ["namespaces", "pods"], verbs: ["get", "list", "watch"] },
  { apiGroup: "apps", resources: ["daemonsets", "deployments", "replicasets", "statefulsets"], verbs: ["get", "list", "watch"] },
  // Whether writing routes is allowed, asked once at start.
  { apiGroup: "authorization.k8s.io", resources: ["selfsubjectaccessreviews"], verbs: ["create"] }
]

/** Writing routes (logtail's live tails): the drains annotation of workloads. */
export const write: ReadonlyArray<Rule> = [
  { apiGroup: "apps", resources: ["daemonsets", "deployments", "statefulsets"], verbs: ["patch"] }
]
