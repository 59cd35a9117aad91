import { assert, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as KubeConnection from "../../../src/layers/kubernetes/KubeConnection.ts"

const withDir = async (body: (dir: string) => Promise<void>) => {
  const dir = mkdtempSync(join(tmpdir(), "logtrain-kubeconfig-"))
  try {
    await body(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const kubeconfig = (user: string, extra = "") => `apiVersion: v1
kind: Config
current-context: main
clusters:
  - name: c
    cluster:
      server: https://10.0.0.1:6443/
      certificate-authority: ca.pem
${extra}
users:
  - name: u
    user:
${user}
contexts:
  - name: main
    context: { cluster: c, user: u }
`

const b64 = (s: string) => Buffer.from(s).toString("base64")

const direct = (connection: KubeConnection.Connection): KubeConnection.Direct => {
  assert.strictEqual(connection._tag, "Direct")
  return connection as KubeConnection.Direct
}

describe("Kubernetes connection from a kubeconfig (no client library)", () => {
  it("reads the server, a CA file relative to the kubeconfig, and a token", () =>
    withDir(async (dir) => {
      writeFileSync(join(dir, "ca.pem"), "CA")
      writeFileSync(join(dir, "config"), kubeconfig("      token: abc"))
      const c = direct(await KubeConnection.resolve({ _tag: "File", path: join(dir, "config") }))
      assert.deepStrictEqual([c.server, c.ca?.toString(), c.insecure, c.authorization()], ["https://10.0.0.1:6443", "CA", false, "Bearer abc"])
    }))

  it("reads client certificates inline, a token file (again as it changes), and basic auth", () =>
    withDir(async (dir) => {
      writeFileSync(join(dir, "ca.pem"), "CA")
      writeFileSync(join(dir, "certs"), kubeconfig(`      client-certificate-data: ${b64("CERT")}\n      client-key-data: ${b64("KEY")}`))
      const certs = direct(await KubeConnection.resolve({ _tag: "File", path: join(dir, "certs") }))
      assert.deepStrictEqual([certs.cert?.toString(), certs.key?.toString(), certs.authorization()], ["CERT", "KEY", undefined])
      writeFileSync(join(dir, "token"), "t1\n")
      writeFileSync(join(dir, "tokenfile"), kubeconfig("      tokenFile: token"))
      assert.strictEqual(direct(await KubeConnection.resolve({ _tag: "File", path: join(dir, "tokenfile") })).authorization(), "Bearer t1")
      writeFileSync(join(dir, "basic"), kubeconfig("      username: admin\n      password: secret"))
      assert.strictEqual(direct(await KubeConnection.resolve({ _tag: "File", path: join(dir, "basic") })).authorization(), `Basic ${b64("admin:secret")}`)
    }))

  it("merges the files KUBECONFIG lists, the first of each name winning; a missing one is skipped", () =>
    withDir(async (dir) => {
      writeFileSync(join(dir, "ca.pem"), "CA")
      writeFileSync(join(dir, "a"), "current-context: main\n")
      writeFileSync(join(dir, "b"), kubeconfig("      token: from-b"))
      const c = direct(await KubeConnection.resolve({ _tag: "Env", value: [join(dir, "nope"), join(dir, "a"), join(dir, "b")].join(":") }))
      assert.strictEqual(c.authorization(), "Bearer from-b")
    }))

  it("a user with an exec plugin or an auth provider needs the client library", () =>
    withDir(async (dir) => {
      writeFileSync(join(dir, "ca.pem"), "CA")
      writeFileSync(join(dir, "exec"), kubeconfig("      exec:\n        command: aws\n        apiVersion: client.authentication.k8s.io/v1beta1"))
      assert.deepStrictEqual(await KubeConnection.resolve({ _tag: "File", path: join(dir, "exec") }), {
        _tag: "NeedsPlugin",
        why: "user u logs in with an exec plugin"
      })
    }))

  it("says what is wrong: no file, no context, not YAML", () =>
    withDir(async (dir) => {
      await expect(KubeConnection.resolve({ _tag: "File", path: join(dir, "none") })).rejects.toThrow(/no such kubeconfig file: .*none/)
      writeFileSync(join(dir, "empty"), "apiVersion: v1\n")
      await expect(KubeConnection.resolve({ _tag: "File", path: join(dir, "empty") })).rejects.toThrow(/no current context/)
      writeFileSync(join(dir, "bad"), "clusters: [\n")
      await expect(KubeConnection.resolve({ _tag: "File", path: join(dir, "bad") })).rejects.toThrow(/not a kubeconfig/)
    }))
})
