/**
 * How to reach the API server, read from a kubeconfig or the in-cluster service account without
 * @kubernetes/client-node (whose code alone costs ~86 MB of memory): the server, its CA, and the
 * credentials — a bearer token (read again as it rotates), a client certificate, or basic auth.
 *
 * A kubeconfig whose user needs a plugin (`exec`, `auth-provider`: cloud logins) is answered with
 * `NeedsPlugin`: then the client library, which runs those, is loaded after all. The YAML parser is
 * loaded only to read kubeconfig files: in a cluster (the service account) it is not needed, and it
 * costs ~1 MB of heap.
 */
import { existsSync, readFileSync } from "node:fs"
import { dirname, isAbsolute, join } from "node:path"
import { type ConfigSource, SERVICE_ACCOUNT_TOKEN } from "./KubeConfigSource.ts"

export interface Direct {
  readonly _tag: "Direct"
  /** `https://host:port` (no trailing slash). */
  readonly server: string
  readonly ca?: Buffer | undefined
  readonly cert?: Buffer | undefined
  readonly key?: Buffer | undefined
  readonly insecure: boolean
  readonly serverName?: string | undefined
  /** The Authorization header to send, read when asked (a token file may rotate). */
  readonly authorization: () => string | undefined
}

export type Connection = Direct | { readonly _tag: "NeedsPlugin"; readonly why: string }

const SERVICE_ACCOUNT = dirname(SERVICE_ACCOUNT_TOKEN)

/** A token file read at most once a minute: bound service-account tokens rotate (hourly). */
const tokenFile = (path: string): () => string => {
  let token = ""
  let readAt = 0
  return () => {
    if (Date.now() - readAt > 60_000) {
      token = readFileSync(path, "utf8").trim()
      readAt = Date.now()
    }
    return token
  }
}

const inCluster = (): Direct => {
  const host = process.env.KUBERNETES_SERVICE_HOST ?? ""
  const port = process.env.KUBERNETES_SERVICE_PORT ?? "443"
  const token = tokenFile(SERVICE_ACCOUNT_TOKEN)
  const ca = join(SERVICE_ACCOUNT, "ca.crt")
  return {
    _tag: "Direct",
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    ca: existsSync(ca) ? readFileSync(ca) : undefined,
    insecure: false,
    authorization: () => `Bearer ${token()}`
  }
}

/** A file path relative to the kubeconfig's directory (as kubectl reads them). */
const file = (value: unknown, dir: string) => readFileSync(isAbsolute(String(value)) ? String(value) : join(dir, String(value)))

/** Base64 data given inline, else the file a path names, else nothing. */
const data = (inline: unknown, path: unknown, dir: string): Buffer | undefined =>
  typeof inline === "string" && inline !== "" ? Buffer.from(inline, "base64") : typeof path === "string" && path !== "" ? file(path, dir) : undefined

interface Named<A> {
  readonly name?: string
  readonly cluster?: A
  readonly user?: A
  readonly context?: A
}
interface Kubeconfig {
  readonly "current-context"?: string
  readonly clusters?: ReadonlyArray<Named<Record<string, unknown>>>
  readonly users?: ReadonlyArray<Named<Record<string, unknown>>>
  readonly contexts?: ReadonlyArray<Named<Record<string, unknown>>>
}

/**
 * Reads the kubeconfig files (KUBECONFIG may list several, `:`-separated; as kubectl, the first
 * of each name wins and the first current-context set is used). Throws, naming the file, when one
 * cannot be read or none holds a usable context.
 */
const fromFiles = async (paths: ReadonlyArray<string>): Promise<Connection> => {
  const existing = paths.filter((path) => path !== "" && existsSync(path))
  if (existing.length === 0) throw new Error(`no such kubeconfig file: ${paths.join(", ")}`)
  const { parseYaml } = await import("./yaml.ts")
  const files = existing.map((path) => {
    const text = readFileSync(path, "utf8")
    let config: Kubeconfig
    try {
      config = (parseYaml(text) ?? {}) as Kubeconfig
    } catch (error) {
      throw new Error(`${path}: not a kubeconfig: ${(error as Error).message}`, { cause: error })
    }
    return { path, config }
  })
  const find = (key: "clusters" | "users" | "contexts", name: string | undefined) => {
    for (const { config, path } of files) {
      const entry = config[key]?.find((e) => e.name === name)
      if (entry !== undefined) return { entry, dir: dirname(path) }
    }
    return undefined
  }
  const current = files.map((f) => f.config["current-context"]).find((c) => c !== undefined && c !== "")
  const context = find("contexts", current)?.entry.context
  if (context === undefined) throw new Error(`${existing.join(", ")}: no current context${current === undefined ? "" : ` named ${current}`}`)
  const cluster = find("clusters", context.cluster as string | undefined)
  if (cluster?.entry.cluster?.server === undefined) {
    throw new Error(`${existing.join(", ")}: context ${current} names no cluster with a server`)
  }
  const user = find("users", context.user as string | undefined)
  const u = user?.entry.user ?? {}
  if (u.exec !== undefined || u["auth-provider"] !== undefined) {
    return { _tag: "NeedsPlugin", why: `user ${String(context.user)} logs in with ${u.exec !== undefined ? "an exec plugin" : "an auth provider"}` }
  }
  const c = cluster.entry.cluster
  const userDir = user?.dir ?? cluster.dir
  const token = typeof u.token === "string" && u.token !== ""
    ? () => u.token as string
    : typeof u.tokenFile === "string" && u.tokenFile !== ""
    ? tokenFile(isAbsolute(u.tokenFile) ? u.tokenFile : join(userDir, u.tokenFile))
    : undefined
  const basic = typeof u.username === "string" && typeof u.password === "string"
    ? `Basic ${Buffer.from(`${u.username}:${u.password}`).toString("base64")}`
    : undefined
  return {
    _tag: "Direct",
    server: String(c.server).replace(/\/+$/, ""),
    ca: data(c["certificate-authority-data"], c["certificate-authority"], cluster.dir),
    cert: data(u["client-certificate-data"], u["client-certificate"], userDir),
    key: data(u["client-key-data"], u["client-key"], userDir),
    insecure: c["insecure-skip-tls-verify"] === true,
    serverName: typeof c["tls-server-name"] === "string" ? c["tls-server-name"] : undefined,
    authorization: () => (token === undefined ? basic : `Bearer ${token()}`)
  }
}

/** The connection a configuration source describes; fails (with the file's name) when it cannot be read. */
export const resolve = async (source: ConfigSource): Promise<Connection> => {
  switch (source._tag) {
    case "ServiceAccount":
      return inCluster()
    case "File":
      return fromFiles([source.path])
    case "Env":
      return fromFiles(source.value.split(":"))
  }
}
