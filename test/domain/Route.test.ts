import { assert, describe, it } from "@effect/vitest"
import { RouteChange, RouteIndex } from "../../src/domain/Route.ts"

const route = (hostname: string, endpoint: string) => ({ hostname, endpoint })

describe("RouteIndex", () => {
  it("looks up the endpoints of a hostname, and nothing for an unrouted one", () => {
    const index = new RouteIndex()
    index.apply("file", RouteChange.Replace({ routes: [route("api", "syslog+tcp://a:1"), route("api", "stdout://")] }))
    assert.deepStrictEqual(index.lookup("api"), ["syslog+tcp://a:1", "stdout://"])
    assert.isUndefined(index.lookup("web"))
  })

  it("sends every hostname to the wildcard's endpoints, once each", () => {
    const index = new RouteIndex()
    index.apply("file", RouteChange.Replace({ routes: [route("*", "stdout://"), route("api", "stdout://"), route("api", "x://")] }))
    assert.deepStrictEqual(index.lookup("web"), ["stdout://"])
    assert.deepStrictEqual(index.lookup("api"), ["stdout://", "x://"])
  })

  it("replaces a source's routes by difference and reports endpoints nobody uses any more", () => {
    const index = new RouteIndex()
    index.apply("db", RouteChange.Replace({ routes: [route("a", "e1"), route("b", "e1"), route("c", "e2")] }))
    const update = index.apply("db", RouteChange.Replace({ routes: [route("a", "e1"), route("d", "e3")] }))
    assert.deepStrictEqual(update.added, [route("d", "e3")])
    assert.deepStrictEqual(update.removed, [route("b", "e1"), route("c", "e2")])
    assert.deepStrictEqual(update.unusedEndpoints, ["e2"])
    assert.isUndefined(index.lookup("b"))
    assert.strictEqual(index.size, 2)
  })

  it("keeps a route two sources hold until both let go", () => {
    const index = new RouteIndex()
    index.apply("k8s", RouteChange.Add({ route: route("a", "e1") }))
    index.apply("db", RouteChange.Add({ route: route("a", "e1") }))
    const first = index.apply("k8s", RouteChange.Remove({ route: route("a", "e1") }))
    assert.deepStrictEqual([first.removed, first.unusedEndpoints], [[], []])
    assert.deepStrictEqual(index.lookup("a"), ["e1"])
    const second = index.apply("db", RouteChange.Remove({ route: route("a", "e1") }))
    assert.deepStrictEqual([second.removed, second.unusedEndpoints], [[route("a", "e1")], ["e1"]])
  })

  it("ignores duplicate adds and removals of unknown routes", () => {
    const index = new RouteIndex()
    index.apply("m", RouteChange.Add({ route: route("a", "e1") }))
    assert.deepStrictEqual(index.apply("m", RouteChange.Add({ route: route("a", "e1") })).added, [])
    assert.deepStrictEqual(index.apply("m", RouteChange.Remove({ route: route("zz", "e1") })).removed, [])
    assert.strictEqual(index.size, 1)
  })

  it("does not report an endpoint as unused when the same change moves it to another hostname", () => {
    const index = new RouteIndex()
    index.apply("m", RouteChange.Replace({ routes: [route("a", "e1")] }))
    const update = index.apply("m", RouteChange.Replace({ routes: [route("b", "e1")] }))
    assert.deepStrictEqual(update.unusedEndpoints, [])
    assert.isTrue(index.isUsed("e1"))
  })

  it("forgets a source once it holds nothing, so sources that come and go do not accumulate", () => {
    const index = new RouteIndex()
    for (let i = 0; i < 100; i++) {
      index.apply(`kubernetes:pods/ns/p-${i}`, RouteChange.Replace({ routes: [route(`h${i}`, "e1")] }))
    }
    index.apply("file", RouteChange.Replace({ routes: [route("a", "e1")] }))
    assert.strictEqual(index.sourceCount, 101)
    for (let i = 0; i < 100; i++) index.apply(`kubernetes:pods/ns/p-${i}`, RouteChange.Replace({ routes: [] }))
    index.apply("gone", RouteChange.Remove({ route: route("x", "e9") }))
    assert.strictEqual(index.sourceCount, 1)
    assert.deepStrictEqual(index.routes(), [route("a", "e1")])
  })
})
