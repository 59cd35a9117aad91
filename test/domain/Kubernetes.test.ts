import { assert, describe, it } from "@effect/vitest"
import * as K from "../../src/domain/Kubernetes.ts"

const obj = (kind: K.Kind, name: string, fields: Partial<K.KubeObject> = {}): K.KubeObject => ({
  kind,
  name,
  namespace: "space",
  uid: `${kind}-${name}`,
  owners: [],
  labels: {},
  annotations: {},
  ...fields
})

describe("naming a pod's logs", () => {
  const pod = obj("Pod", "api-7d9f8c6b5-x2kqz")
  const deployment = obj("Deployment", "api")
  const cases: ReadonlyArray<readonly [string, K.KubeObject, K.KubeObject, boolean, K.Naming]> = [
    ["plain: owner.namespace, pod name", pod, deployment, false, { hostname: "api.space", tag: "api-7d9f8c6b5-x2kqz" }],
    ["plain: a pod with no owner", pod, pod, false, { hostname: "api-7d9f8c6b5-x2kqz.space", tag: "api-7d9f8c6b5-x2kqz" }],
    ["hostname and tag annotations", pod, obj("Deployment", "api", { annotations: { [K.HostnameAnnotation]: "shop", [K.TagAnnotation]: "frontend" } }), false, { hostname: "shop", tag: "frontend" }],
    ["tag annotation alone: the tag (the original ignored it without the hostname annotation)", pod, obj("Deployment", "api", { annotations: { [K.TagAnnotation]: "frontend" } }), false, { hostname: "api.space", tag: "frontend" }],
    ["tag annotation alone, Akkeris", obj("Pod", "api--worker-7d9f8c6b5-x2kqz"), obj("Deployment", "api--worker", { annotations: { [K.TagAnnotation]: "jobs" }, labels: { [K.AppNameLabel]: "api", [K.DynoTypeLabel]: "worker" } }), true, { hostname: "api-space", tag: "jobs" }],
    ["hostname annotation alone, plain: the owner's name as tag", pod, obj("Deployment", "api", { annotations: { [K.HostnameAnnotation]: "shop" } }), false, { hostname: "shop", tag: "api" }],
    ["hostname annotation alone, Akkeris: the dyno tag", obj("Pod", "api--worker-7d9f8c6b5-x2kqz"), obj("Deployment", "api--worker", { annotations: { [K.HostnameAnnotation]: "shop" } }), true, { hostname: "shop", tag: "worker.7d9f8c6b5-x2kqz" }],
    ["Akkeris labels", obj("Pod", "api--worker-7d9f8c6b5-x2kqz"), obj("Deployment", "api--worker", { labels: { [K.AppNameLabel]: "api", [K.DynoTypeLabel]: "worker" } }), true, { hostname: "api-space", tag: "worker.7d9f8c6b5-x2kqz" }],
    ["Akkeris one-off: named after the pod", obj("Pod", "api-run-1234-abcd-ef"), obj("Pod", "api-run-1234-abcd-ef", { labels: { [K.OneOffLabel]: "true", [K.DynoTypeLabel]: "run" } }), true, { hostname: "api-run-1234-abcd-ef-space", tag: "run.abcd-ef" }],
    ["Akkeris without labels: owner-namespace, web dyno", pod, deployment, true, { hostname: "api-space", tag: "web.7d9f8c6b5-x2kqz" }],
    ["Akkeris without labels, --dyno in the pod name", obj("Pod", "api--worker-7d9f8c6b5-x2kqz"), obj("Deployment", "api--worker"), true, { hostname: "api--worker-space", tag: "worker.7d9f8c6b5-x2kqz" }]
  ]
  for (const [name, p, top, akkeris, expected] of cases) {
    it(`${name}`, () => assert.deepStrictEqual(K.namingOf(p, top, akkeris), expected))
  }
})

describe("naming from a pod name alone (the API had no answer)", () => {
  const cases: ReadonlyArray<readonly [string, boolean, K.Naming]> = [
    ["api-7d9f8c6b5-x2kqz", false, { hostname: "api.space", tag: "api-7d9f8c6b5-x2kqz" }],
    ["my-app-7d9f8c6b5-x2kqz", false, { hostname: "my-app.space", tag: "my-app-7d9f8c6b5-x2kqz" }],
    ["web-0", false, { hostname: "web-0.space", tag: "web-0" }],
    ["solo", false, { hostname: "solo.space", tag: "solo" }],
    ["api--worker-7d9f8c6b5-x2kqz", true, { hostname: "api-space", tag: "worker.7d9f8c6b5-x2kqz" }],
    ["api-7d9f8c6b5-x2kqz", true, { hostname: "api-space", tag: "web.7d9f8c6b5-x2kqz" }],
    ["solo", true, { hostname: "solo", tag: "" }]
  ]
  for (const [pod, akkeris, expected] of cases) {
    it(`${pod}${akkeris ? " (Akkeris)" : ""}`, () => assert.deepStrictEqual(K.namingFromPodName(pod, "space", akkeris), expected))
  }
})

describe("annotations and objects", () => {
  it("reads drain lists separated by ; or , and keeps commas inside URLs", () => {
    assert.deepStrictEqual(
      K.parseDrains(" syslog+tcp://a:1; https://b/in?tags=x,y , es+https://c:9200 ;;"),
      ["syslog+tcp://a:1", "https://b/in?tags=x,y", "es+https://c:9200"]
    )
    assert.deepStrictEqual(K.parseDrains(undefined), [])
  })

  it("names an object's routes after its hostname annotation, or name and namespace", () => {
    assert.strictEqual(K.hostnameOf(obj("Deployment", "api"), false), "api.space")
    assert.strictEqual(K.hostnameOf(obj("Deployment", "api"), true), "api-space")
    assert.strictEqual(K.hostnameOf(obj("Deployment", "api", { annotations: { [K.HostnameAnnotation]: "x" } }), true), "x")
  })

  it("trims an API object to what logtrain reads", () => {
    const trimmed = K.trim("Pod", {
      metadata: {
        name: "api-1-2",
        namespace: "ns",
        uid: "u1",
        labels: { "akkeris.io/app-name": "api", "app.kubernetes.io/name": "dropped" },
        annotations: { "logtrain.akkeris.io/drains": "stdout://", "kubectl.kubernetes.io/last-applied-configuration": "{…big…}" },
        ownerReferences: [{ kind: "ReplicaSet", name: "api-1", uid: "r1", controller: true }],
        managedFields: [{ manager: "kubectl" }]
      },
      spec: { nodeName: "node-a", containers: [{ name: "api" }] },
      status: { phase: "Running" }
    })
    assert.deepStrictEqual(trimmed, {
      kind: "Pod",
      name: "api-1-2",
      namespace: "ns",
      uid: "u1",
      owners: [{ kind: "ReplicaSet", name: "api-1", uid: "r1", controller: true }],
      labels: { "akkeris.io/app-name": "api" },
      annotations: { "logtrain.akkeris.io/drains": "stdout://" },
      nodeName: "node-a"
    })
  })

  it("allows persistent:// only on pods, as the original", () => {
    assert.isTrue(K.allowedOn("Pod", "persistent://key"))
    assert.isFalse(K.allowedOn("Deployment", "Persistent://key"))
    assert.isTrue(K.allowedOn("StatefulSet", "syslog+tcp://a:1"))
  })
})
