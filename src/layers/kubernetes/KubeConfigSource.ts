/**
 * Where the Kubernetes configuration comes from, in kubectl's order — the file given
 * (`--kube-config`), `KUBECONFIG`, `~/.kube/config`, the in-cluster service account — decided
 * without loading the client library, so that a feature that can do without the API (the
 * container log input) does not pay for the library when there is no API to talk to.
 */
import { existsSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"

export const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"

export type ConfigSource =
  | { readonly _tag: "File"; readonly path: string }
  | { readonly _tag: "Env"; readonly value: string }
  | { readonly _tag: "ServiceAccount" }

/** The source to load, or undefined when there is none. */
export const find = (file: string | undefined): ConfigSource | undefined => {
  if (file !== undefined) return { _tag: "File", path: file }
  const fromEnv = process.env.KUBECONFIG
  if (fromEnv !== undefined && fromEnv !== "") return { _tag: "Env", value: fromEnv }
  const home = join(homedir(), ".kube", "config")
  if (existsSync(home)) return { _tag: "File", path: home }
  if (process.env.KUBERNETES_SERVICE_HOST !== undefined && existsSync(SERVICE_ACCOUNT_TOKEN)) return { _tag: "ServiceAccount" }
  return undefined
}

export const noCluster = `no cluster: not in a cluster (no ${SERVICE_ACCOUNT_TOKEN}), and no kubeconfig (set KUBECONFIG or --kube-config)`
