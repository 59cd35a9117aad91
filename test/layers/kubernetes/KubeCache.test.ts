import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import * as KubeClient from "../../../src/layers/kubernetes/KubeClient.ts"
import * as KubeCache from "../../../src/layers/kubernetes/KubeCache.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import * as FakeKubeApi from "../../helpers/FakeKubeApi.ts"

const fakeApi = Effect.acquireRelease(
  Effect.promise(() => FakeKubeApi.listen()),
  (fake) => Effect.promise(() => fake.stop())
)

const start = (fake: FakeKubeApi.FakeKubeApi, akkeris: boolean) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(
      KubeCache.layer({ akkeris, nodeName: "node-1" }).pipe(
        Layer.provide(KubeClient.layer({ kubeconfig: fake.kubeconfig })),
        Layer.provide(Readiness.layer)
      ),
      scope
    )
    const cache = Context.get(context, KubeCache.KubeCache)
    yield* cache.deployments.synced
    yield* cache.pods.synced
    return cache
  })

/** A small cluster: each kind of owner, with and without the overriding annotations and labels. */
const populate = (fake: FakeKubeApi.FakeKubeApi) => {
  fake.create("deployments", { name: "web", namespace: "shop" })
  fake.create("replicasets", { name: "web-5d8f7c", namespace: "shop", owner: { kind: "Deployment", name: "web" } })
  fake.create("pods", { name: "web-5d8f7c-x2x9q", namespace: "shop", nodeName: "node-1", owner: { kind: "ReplicaSet", name: "web-5d8f7c" } })

  fake.create("deployments", {
    name: "api",
    namespace: "shop",
    annotations: { "logtrain.akkeris.io/hostname": "api.example.com", "logtrain.akkeris.io/tag": "api" }
  })
  fake.create("replicasets", { name: "api-77f9b", namespace: "shop", owner: { kind: "Deployment", name: "api" } })
  fake.create("pods", { name: "api-77f9b-abcde", namespace: "shop", nodeName: "node-1", owner: { kind: "ReplicaSet", name: "api-77f9b" } })

  fake.create("statefulsets", { name: "db", namespace: "shop" })
  fake.create("pods", { name: "db-0", namespace: "shop", nodeName: "node-1", owner: { kind: "StatefulSet", name: "db" } })

  fake.create("daemonsets", { name: "agent", namespace: "kube-system" })
  fake.create("pods", { name: "agent-7xk2p", namespace: "kube-system", nodeName: "node-1", owner: { kind: "DaemonSet", name: "agent" } })

  // Akkeris: an app's dyno, and a one-off.
  fake.create("deployments", {
    name: "orders--worker",
    namespace: "prod",
    labels: { "akkeris.io/app-name": "orders", "akkeris.io/dyno-type": "worker" }
  })
  fake.create("replicasets", { name: "orders--worker-6c9d4", namespace: "prod", owner: { kind: "Deployment", name: "orders--worker" } })
  fake.create("pods", {
    name: "orders--worker-6c9d4-q7w8e",
    namespace: "prod",
    nodeName: "node-1",
    owner: { kind: "ReplicaSet", name: "orders--worker-6c9d4" }
  })
  fake.create("pods", {
    name: "orders-run-3f2a1-zz9yx",
    namespace: "prod",
    nodeName: "node-1",
    labels: { "akkeris.io/oneoff": "true", "akkeris.io/dyno-type": "run" }
  })
}

describe("KubeCache: naming a pod's logs from its top-level owner", () => {
  const cases: ReadonlyArray<readonly [string, string, { hostname: string; tag: string }, { hostname: string; tag: string }]> = [
    ["shop", "web-5d8f7c-x2x9q", { hostname: "web.shop", tag: "web-5d8f7c-x2x9q" }, { hostname: "web-shop", tag: "web.5d8f7c-x2x9q" }],
    ["shop", "api-77f9b-abcde", { hostname: "api.example.com", tag: "api" }, { hostname: "api.example.com", tag: "api" }],
    ["shop", "db-0", { hostname: "db.shop", tag: "db-0" }, { hostname: "db-shop", tag: "web.db-0" }],
    ["kube-system", "agent-7xk2p", { hostname: "agent.kube-system", tag: "agent-7xk2p" }, {
      hostname: "agent-kube-system",
      tag: "web.agent-7xk2p"
    }],
    ["prod", "orders--worker-6c9d4-q7w8e", { hostname: "orders--worker.prod", tag: "orders--worker-6c9d4-q7w8e" }, {
      hostname: "orders-prod",
      tag: "worker.6c9d4-q7w8e"
    }],
    ["prod", "orders-run-3f2a1-zz9yx", { hostname: "orders-run-3f2a1-zz9yx.prod", tag: "orders-run-3f2a1-zz9yx" }, {
      hostname: "orders-run-3f2a1-zz9yx-prod",
      tag: "run.3f2a1-zz9yx"
    }],
    // Unknown to the API: from the name alone.
    ["shop", "gone-6f5d4-k8j7h", { hostname: "gone.shop", tag: "gone-6f5d4-k8j7h" }, { hostname: "gone-shop", tag: "web.6f5d4-k8j7h" }]
  ]
  for (const akkeris of [false, true]) {
    it.live(akkeris ? "with AKKERIS=true" : "plain", () =>
      Effect.gen(function*() {
        const fake = yield* fakeApi
        populate(fake)
        const cache = yield* start(fake, akkeris)
        for (const [namespace, pod, plain, akkerisNaming] of cases) {
          assert.deepStrictEqual((yield* cache.describe(namespace, pod)).naming, akkeris ? akkerisNaming : plain, `${namespace}/${pod}`)
        }
        assert.isTrue((yield* cache.describe("prod", "orders--worker-6c9d4-q7w8e")).akkerisApp)
        assert.isFalse((yield* cache.describe("shop", "web-5d8f7c-x2x9q")).akkerisApp)
        // Replicasets are read once and remembered, not once per question.
        yield* cache.describe("shop", "web-5d8f7c-x2x9q")
        const reads = fake.requests.filter((r) => r.path.includes("/replicasets/web-5d8f7c")).length
        assert.strictEqual(reads, 1)
      }))
  }

  it.live("the multiline annotation of a pod's top-level owner applies to its logs; the pod's own wins", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("deployments", { name: "api", namespace: "shop", annotations: { "logtrain.akkeris.io/multiline": "java" } })
      fake.create("replicasets", { name: "api-77f9b", namespace: "shop", owner: { kind: "Deployment", name: "api" } })
      fake.create("pods", { name: "api-77f9b-abcde", namespace: "shop", nodeName: "node-1", owner: { kind: "ReplicaSet", name: "api-77f9b" } })
      fake.create("pods", {
        name: "api-77f9b-fghij",
        namespace: "shop",
        nodeName: "node-1",
        owner: { kind: "ReplicaSet", name: "api-77f9b" },
        annotations: { "logtrain.akkeris.io/multiline": "regex:^\\d{4}-" }
      })
      const cache = yield* start(fake, false)
      assert.strictEqual((yield* cache.describe("shop", "api-77f9b-abcde")).multiline, "java")
      assert.strictEqual((yield* cache.describe("shop", "api-77f9b-fghij")).multiline, "regex:^\\d{4}-")
    }))

  it.live("a pod not yet seen by the watch is asked for, and a pod of another node is not followed", () =>
    Effect.gen(function*() {
      const fake = yield* fakeApi
      fake.create("statefulsets", { name: "db", namespace: "shop" })
      fake.create("pods", { name: "db-1", namespace: "shop", nodeName: "node-2", owner: { kind: "StatefulSet", name: "db" } })
      const cache = yield* start(fake, false)
      assert.strictEqual(cache.pods.size(), 0)
      assert.deepStrictEqual(yield* cache.describe("shop", "db-1"), {
        naming: { hostname: "db.shop", tag: "db-1" },
        known: true,
        akkerisApp: false
      })
      assert.deepStrictEqual(yield* cache.describe("shop", "gone-6f5d4-k8j7h"), {
        naming: { hostname: "gone.shop", tag: "gone-6f5d4-k8j7h" },
        known: false,
        akkerisApp: undefined
      })
    }))
})
