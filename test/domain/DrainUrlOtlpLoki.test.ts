import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as DrainUrl from "../../src/domain/DrainUrl.ts"

const ok = (endpoint: string): DrainUrl.DrainUrl => {
  const result = DrainUrl.parse(endpoint)
  if (Result.isFailure(result)) assert.fail(`${endpoint}: ${result.failure.message}`)
  return result.success
}

const error = (endpoint: string): DrainUrl.DrainUrlError => {
  const result = DrainUrl.parse(endpoint)
  if (Result.isSuccess(result)) assert.fail(`${endpoint} should not parse`)
  return result.failure
}

describe("DrainUrl.parse: otlp+http(s)", () => {
  it("posts to /v1/logs on port 4318 unless told otherwise, protobuf and gzip by default", () => {
    const table: ReadonlyArray<readonly [string, string]> = [
      ["otlp+http://collector", "http://collector:4318/v1/logs"],
      ["otlp+http://collector/", "http://collector:4318/v1/logs"],
      ["OTLP+HTTPS://collector", "https://collector:4318/v1/logs"],
      ["otlp+https://otlp.example.com:443/otlp/v1/logs", "https://otlp.example.com/otlp/v1/logs"],
      ["otlp+http://10.0.0.1:9999/ingest?x=1", "http://10.0.0.1:9999/ingest?x=1"]
    ]
    for (const [endpoint, target] of table) {
      const url = ok(endpoint)
      assert.strictEqual(url._tag, "Otlp", endpoint)
      if (url._tag !== "Otlp") continue
      assert.deepStrictEqual([url.url, url.encoding, url.compression, url.insecure], [target, "protobuf", "gzip", false], endpoint)
    }
  })

  it("reads its options and keeps them, not the credentials, out of the target", () => {
    const url = ok("otlp+https://user:pa%40ss@collector/v1/logs?encoding=json&compression=none&insecure=true&team=a")
    assert.strictEqual(url._tag, "Otlp")
    if (url._tag !== "Otlp") return
    assert.deepStrictEqual([url.encoding, url.compression, url.insecure], ["json", "none", true])
    assert.strictEqual(url.url, "https://user:pa%40ss@collector:4318/v1/logs?team=a")
    assert.notInclude(url.display, "pa%40ss")
    assert.include(url.display, "encoding=json")
  })

  it("says what is wrong with an option", () => {
    assert.strictEqual(error("otlp+http://c?encoding=xml").reason, "InvalidOption")
    assert.strictEqual(error("otlp+http://c?compression=zstd").reason, "InvalidOption")
    assert.strictEqual(error("otlp+http://c:99999").reason, "InvalidUrl")
    assert.strictEqual(error("otlp+http:///v1/logs").reason, "MissingHost")
  })
})

describe("DrainUrl.parse: loki+http(s)", () => {
  it("pushes to /loki/api/v1/push, a path being a prefix; port 3100 for http", () => {
    const table: ReadonlyArray<readonly [string, string]> = [
      ["loki+http://loki", "http://loki:3100/loki/api/v1/push"],
      ["loki+http://loki:3100/", "http://loki:3100/loki/api/v1/push"],
      ["loki+https://logs.example.com", "https://logs.example.com/loki/api/v1/push"],
      ["loki+https://logs.example.com/loki/api/v1/push", "https://logs.example.com/loki/api/v1/push"],
      ["loki+http://gateway:8080/tenant-a/", "http://gateway:8080/tenant-a/loki/api/v1/push"]
    ]
    for (const [endpoint, target] of table) {
      const url = ok(endpoint)
      assert.strictEqual(url._tag === "Loki" && url.url, target, endpoint)
    }
  })

  it("reads the tenant, the labels from the fixed list, the metadata mode", () => {
    const url = ok("loki+https://u:secret@logs.example.com?tenant=team-a&labels=level, namespace,level&metadata=line&compression=none")
    assert.strictEqual(url._tag, "Loki")
    if (url._tag !== "Loki") return
    assert.deepStrictEqual([url.tenant, url.labels, url.metadata, url.compression], ["team-a", ["level", "namespace"], "line", "none"])
    assert.strictEqual(url.url, "https://u:secret@logs.example.com/loki/api/v1/push")
    assert.notInclude(url.display, "secret")
    assert.notInclude(url.display, "team-a", "a tenant id is shown masked")
    const plain = ok("loki+http://loki")
    assert.deepStrictEqual(plain._tag === "Loki" && [plain.tenant, plain.labels, plain.metadata], [undefined, [], "structured"])
  })

  it("refuses labels outside the list, and bad options", () => {
    const bad = error("loki+http://loki?labels=level,message")
    assert.strictEqual(bad.reason, "InvalidOption")
    assert.include(bad.message, "level, facility, tag, namespace, pod, container")
    assert.strictEqual(error("loki+http://loki?metadata=json").reason, "InvalidOption")
  })
})
