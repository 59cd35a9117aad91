/**
 * What operators apply: the bundle `npm run build` makes (and the Dockerfile runs), and the
 * manifests in deployments/kubernetes, held to the code — ports, probes, commands, RBAC, metrics.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { once } from "node:events"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { connect } from "node:net"
import { join } from "node:path"
import { parseAllDocuments } from "yaml"
import * as Permissions from "../../src/layers/kubernetes/Permissions.ts"
import { LogtailConfig } from "../../src/programs/LogtailConfig.ts"
import { LogtrainConfig } from "../../src/programs/LogtrainConfig.ts"
import { caOption, certificates } from "../helpers/certs.ts"
import * as FakeKubeApi from "../helpers/FakeKubeApi.ts"
import * as HttpReceiver from "../helpers/HttpReceiver.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogReceiver from "../helpers/SyslogReceiver.ts"

const root = join(import.meta.dirname, "../..")
const manifests = join(root, "deployments/kubernetes")

/** Parsed YAML: its shape is what these tests check, field by field. */
// oxlint-disable-next-line typescript/no-explicit-any
type Doc = Record<string, any>

const documents: Array<Doc> = readdirSync(manifests)
  .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(manifests, f), "utf8")).map((d) => {
      if (d.errors.length > 0) throw new Error(`${f}: ${d.errors[0]!.message}`)
      return { ...(d.toJS() as Doc), file: f }
    })
  )
const find = (kind: string, name: string): Doc => {
  const doc = documents.find((d) => d.kind === kind && d.metadata?.name === name)
  if (doc === undefined) throw new Error(`no ${kind} ${name} in deployments/kubernetes`)
  return doc
}
const env = (container: Doc): Record<string, Doc> => Object.fromEntries((container.env ?? []).map((e: Doc) => [e.name, e]))
const portsOf = (container: Doc): Record<string, number> => Object.fromEntries(container.ports.map((p: Doc) => [p.name, p.containerPort]))

/** The configuration defaults, as the programs read them with no variable set. */
const defaults = Effect.runSync(LogtrainConfig.parse(ConfigProvider.fromEnv({ env: {} })))
const logtailDefaults = Effect.runSync(LogtailConfig.parse(ConfigProvider.fromEnv({ env: {} })))

const mebibytes = (quantity: string) => Number(/^(\d+)Mi$/.exec(quantity)![1])

const sortRules = (rules: ReadonlyArray<Doc>) =>
  rules.flatMap((r) =>
    (r.apiGroups ?? [r.apiGroup]).flatMap((g: string) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${g}/${res}/${v}`)))
  ).toSorted()

const waitHealthy = async (port: number, child: ReturnType<typeof spawn>, stderr: () => string) => {
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${stderr()}`)
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`not healthy: ${stderr()}`)
}

/** Starts a program of the bundle (from dist/, as the image does) on loopback, its stderr kept. */
const startBundle = (program: string, env: Record<string, string>) => {
  const child = spawn(process.execPath, [join(root, `dist/bundle/${program}.js`)], {
    cwd: join(root, "dist"),
    env: { PATH: process.env.PATH ?? "", LISTEN_ADDRESS: "127.0.0.1", ...env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let output = ""
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve))
  return { child, stderr: () => output, exited }
}

describe("deployments", () => {
  it("npm run build makes a bundle whose logtrain and logtail start, answer /healthz and exit 0 on SIGTERM", async () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }
    assert.strictEqual(pkg.scripts.build, "node scripts/build.ts")
    execFileSync(process.execPath, [join(root, "scripts/build.ts")], { cwd: root, stdio: "pipe" })
    // What the Dockerfile copies and runs, and the commands the manifests give.
    const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8")
    assert.include(dockerfile, "RUN npm run build")
    assert.include(dockerfile, 'CMD ["node", "dist/bundle/logtrain.js"]')
    assert.include(dockerfile, "ENV NODE_OPTIONS=--max-semi-space-size=4")
    assert.include(dockerfile, "ENV MALLOC_ARENA_MAX=2")
    assert.deepStrictEqual(find("Deployment", "logtail").spec.template.spec.containers[0].command, ["node", "dist/bundle/logtail.js"])
    for (const program of ["logtrain", "logtail"]) {
      const [http, tcp, udp, envoy] = await freePorts(4)
      const { child, exited, stderr } = startBundle(program, {
        HTTP_PORT: String(http),
        SYSLOG_TCP_PORT: String(tcp),
        SYSLOG_UDP_PORT: String(udp),
        // The Envoy input needs the .proto files next to the bundle.
        ...(program === "logtrain" ? { ENVOY: "true", ENVOY_PORT: String(envoy), SYSLOG_TCP: "true" } : {})
      })
      try {
        await waitHealthy(http!, child, stderr)
        const deadline = Date.now() + 10_000
        while (!stderr().includes(`${program} started`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
        assert.include(stderr(), `${program} started`)
      } finally {
        child.kill("SIGTERM")
      }
      assert.strictEqual(await exited, 0, `${program}: ${stderr()}`)
    }
  }, 120_000)

  // The bundle loads Node's builtins its own way (scripts/build.ts) and undici on demand: TLS,
  // HTTP(S) and the CA option must work in it as in the sources. Runs after the test above built it.
  it("the bundle delivers what its syslog input gets to syslog+tls, syslog+https (with a CA) and http drains", async () => {
    const certs = certificates()
    const tls = await SyslogReceiver.listen((await freePorts(1))[0]!, { tls: { cert: certs.serverCert, key: certs.serverKey } })
    const https = await HttpReceiver.listen({ tls: { cert: certs.serverCert, key: certs.serverKey } })
    const http = await HttpReceiver.listen()
    const [httpPort, tcp, udp] = await freePorts(3)
    const ca = caOption(certs.ca)
    const drains = [`syslog+tls://localhost:${tls.port}?ca=${ca}`, `syslog+https://localhost:${https.port}/in?ca=${ca}`, `http://127.0.0.1:${http.port}/in`]
    const { child, exited, stderr } = startBundle("logtrain", {
      HTTP_PORT: String(httpPort),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      SYSLOG_UDP_PORT: String(udp),
      ROUTES: JSON.stringify({ "*": drains })
    })
    try {
      await waitHealthy(httpPort!, child, stderr)
      const socket = connect(tcp!, "127.0.0.1")
      await once(socket, "connect")
      socket.end("<134>1 2026-11-21T10:00:00.000Z web-1 app - - - to every drain\n")
      const delivered = () => tls.lines.length + https.requests.length + http.requests.length
      const deadline = Date.now() + 10_000
      while (delivered() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      assert.deepStrictEqual(tls.packets().map((p) => p.message), ["to every drain"], stderr())
      assert.strictEqual(https.requests.length, 1, stderr())
      assert.include(https.requests[0]!.body, "to every drain")
      assert.strictEqual(http.requests.length, 1, stderr())
      assert.strictEqual(JSON.parse(http.requests[0]!.body)[0].message, "to every drain")
    } finally {
      child.kill("SIGTERM")
      await Promise.all([tls.stop(), https.stop(), http.stop()])
    }
    assert.strictEqual(await exited, 0, stderr())
  }, 60_000)

  // Modules the bundle loads on demand (the YAML parser for a kubeconfig file, the Kubernetes
  // client): routes from an annotation must reach a drain as they do from the sources.
  it("the bundle reads a kubeconfig file and routes by a deployment's annotation", async () => {
    const kube = await FakeKubeApi.listen()
    const sink = await SyslogReceiver.listen((await freePorts(1))[0]!)
    kube.create("deployments", {
      name: "web",
      namespace: "shop",
      annotations: { "logtrain.akkeris.io/drains": `syslog+tcp://127.0.0.1:${sink.port}` }
    })
    const [httpPort, tcp, udp] = await freePorts(3)
    const { child, exited, stderr } = startBundle("logtrain", {
      HTTP_PORT: String(httpPort),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      SYSLOG_UDP_PORT: String(udp),
      KUBERNETES_DATASOURCE: "true",
      KUBECONFIG: kube.kubeconfig
    })
    try {
      await waitHealthy(httpPort!, child, stderr)
      const deadline = Date.now() + 10_000
      while (sink.lines.length === 0 && Date.now() < deadline) {
        // Sent until the route is in: lines for a host with no route yet are dropped, counted.
        const socket = connect(tcp!, "127.0.0.1")
        await once(socket, "connect")
        socket.end("<134>1 2026-11-21T10:00:00.000Z web.shop app - - - routed by annotation\n")
        await new Promise((r) => setTimeout(r, 200))
      }
      assert.include(sink.packets().map((p) => p.message), "routed by annotation", stderr())
    } finally {
      child.kill("SIGTERM")
      await Promise.all([sink.stop(), kube.stop()])
    }
    assert.strictEqual(await exited, 0, stderr())
  }, 60_000)

  it("kustomization.yaml lists every manifest, and every manifest parses", () => {
    const kustomization = parseAllDocuments(readFileSync(join(manifests, "kustomization.yaml"), "utf8"))[0]!.toJS() as Doc
    const files = readdirSync(manifests).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").toSorted()
    assert.deepStrictEqual([...kustomization.resources].toSorted(), files)
    assert.strictEqual(kustomization.namespace, "logtrain")
    for (const doc of documents) {
      assert.notStrictEqual(doc.kind, "PodSecurityPolicy", doc.file)
      assert.notMatch(String(doc.apiVersion), /^extensions\//, doc.file)
    }
  })

  it("RBAC grants exactly what the code asks for: reading to both, writing routes to logtail only", () => {
    const reader = find("ClusterRole", "logtrain-reader")
    const writer = find("ClusterRole", "logtrain-routes-writer")
    assert.deepStrictEqual(sortRules(reader.rules), sortRules(Permissions.read))
    assert.deepStrictEqual(sortRules(writer.rules), sortRules(Permissions.write))
    for (const rule of [...reader.rules, ...writer.rules]) {
      assert.notInclude(rule.apiGroups, "extensions")
      for (const resource of ["configmaps", "services", "secrets"]) assert.notInclude(rule.resources, resource)
    }
    const subjects = (name: string) => find("ClusterRoleBinding", name).subjects.map((s: Doc) => `${s.namespace}/${s.name}`).toSorted()
    assert.deepStrictEqual(find("ClusterRoleBinding", "logtrain-reader").roleRef.name, "logtrain-reader")
    assert.deepStrictEqual(subjects("logtrain-reader"), ["logtrain/logtail", "logtrain/logtrain"])
    assert.deepStrictEqual(find("ClusterRoleBinding", "logtrain-routes-writer").roleRef.name, "logtrain-routes-writer")
    assert.deepStrictEqual(subjects("logtrain-routes-writer"), ["logtrain/logtail"])
    assert.strictEqual(find("DaemonSet", "logtrain").spec.template.spec.serviceAccountName, "logtrain")
    assert.strictEqual(find("Deployment", "logtail").spec.template.spec.serviceAccountName, "logtail")
  })

  it("the logtrain DaemonSet: every node, a privileged init container only, read-only logs, state on the host, probes, budget", () => {
    const spec = find("DaemonSet", "logtrain").spec.template.spec
    assert.deepStrictEqual(spec.tolerations, [{ operator: "Exists" }])
    const [init] = spec.initContainers
    assert.isTrue(init.securityContext.privileged)
    assert.match(init.command.join(" "), /fs\/inotify\/max_user_instances/)
    assert.strictEqual(spec.containers.length, 1)
    const main = spec.containers[0]
    assert.notStrictEqual(main.securityContext.privileged, true)
    assert.isTrue(main.securityContext.readOnlyRootFilesystem)
    assert.isFalse(main.securityContext.allowPrivilegeEscalation)
    assert.deepStrictEqual(main.securityContext.capabilities.drop, ["ALL"])
    const mounts = Object.fromEntries(main.volumeMounts.map((m: Doc) => [m.mountPath, m]))
    assert.isTrue(mounts["/var/log/containers"].readOnly)
    assert.isTrue(mounts["/var/log/pods"].readOnly)
    const vars = env(main)
    assert.strictEqual(vars.KUBERNETES_LOG_PATH.value, "/var/log/containers")
    const state = mounts[vars.STATE_DIR.value]
    assert.isDefined(state, "STATE_DIR is a mounted volume")
    assert.notStrictEqual(state.readOnly, true)
    const volume = spec.volumes.find((v: Doc) => v.name === state.name)
    assert.isDefined(volume.hostPath, "checkpoints survive the pod")
    // The image's compile cache lies on that volume: written once per node, kept across restarts.
    const compileCache = /^ENV NODE_COMPILE_CACHE=(\S+)$/m.exec(readFileSync(join(root, "Dockerfile"), "utf8"))?.[1]
    assert.isDefined(compileCache)
    assert.isTrue(compileCache!.startsWith(`${state.mountPath}/`), compileCache)
    assert.deepStrictEqual(vars.NODE_NAME.valueFrom, { fieldRef: { fieldPath: "spec.nodeName" } })
    for (const flag of ["KUBERNETES", "KUBERNETES_DATASOURCE", "SYSLOG_TCP", "SYSLOG_UDP", "ENVOY"]) assert.strictEqual(vars[flag].value, "true", flag)
    assert.deepStrictEqual(portsOf(main), {
      http: defaults.httpPort,
      "syslog-tcp": defaults.syslogTcpPort,
      "syslog-udp": defaults.syslogUdpPort,
      "envoy-als": defaults.envoyPort
    })
    assert.deepStrictEqual([main.livenessProbe.httpGet.path, main.livenessProbe.httpGet.port], ["/healthz", "http"])
    assert.deepStrictEqual([main.readinessProbe.httpGet.path, main.readinessProbe.httpGet.port], ["/readyz", "http"])
    // The original's limit; the request at least the reference workload's measured average (99-102 MB; see the comment there).
    assert.strictEqual(mebibytes(main.resources.limits.memory), 128)
    assert.isAtLeast(mebibytes(main.resources.requests.memory), 99 * 1e6 / 2 ** 20)
    assert.isBelow(mebibytes(main.resources.requests.memory), 128)
    assert.isUndefined(vars.MEMORY_LIMIT, "logtrain sizes its budget and heap from the container's limit")
    // The grace period covers the flush deadline and the 2 s the inputs get to finish reading.
    const flush = Number(/^(\d+)s$/.exec(vars.DRAIN_FLUSH_TIMEOUT.value)![1])
    assert.isAtLeast(spec.terminationGracePeriodSeconds, flush + 2 + 3)
  })

  it("Services expose the ports the containers listen on", () => {
    const ds = find("DaemonSet", "logtrain").spec.template.spec.containers[0]
    const service = find("Service", "logtrain")
    assert.deepStrictEqual(service.spec.selector, find("DaemonSet", "logtrain").spec.template.metadata.labels)
    for (const port of service.spec.ports) {
      assert.property(portsOf(ds), port.targetPort)
      const container = ds.ports.find((p: Doc) => p.name === port.targetPort)
      assert.strictEqual(port.protocol ?? "TCP", container.protocol ?? "TCP", port.name)
    }
    const tail = find("Deployment", "logtail")
    const tailContainer = tail.spec.template.spec.containers[0]
    assert.deepStrictEqual(portsOf(tailContainer), { http: defaults.httpPort, "syslog-tcp": defaults.syslogTcpPort, "syslog-udp": defaults.syslogUdpPort })
    const tailService = find("Service", "logtail")
    assert.deepStrictEqual(tailService.spec.selector, tail.spec.template.metadata.labels)
    for (const port of tailService.spec.ports) assert.property(portsOf(tailContainer), port.targetPort)
    assert.include(tailService.spec.ports.map((p: Doc) => p.port), 80, "deis/logger's clients use port 80")
    // logtail: Redis storage, the Redis the manifests run, and its own Service as tail endpoint.
    const vars = env(tailContainer)
    assert.strictEqual(vars.STORAGE_ADAPTER.value, "redis")
    assert.notStrictEqual(logtailDefaults.storageAdapter, "redis", "the embedded default needs no Redis")
    const redis = find("Service", vars.DEIS_LOGGER_REDIS_SERVICE_HOST.value)
    assert.strictEqual(String(redis.spec.ports[0].port), vars.DEIS_LOGGER_REDIS_SERVICE_PORT.value)
    assert.strictEqual(vars.NAME.value, tailService.metadata.name)
    assert.deepStrictEqual([tailContainer.livenessProbe.httpGet.path, tailContainer.readinessProbe.httpGet.path], ["/healthz", "/readyz"])
  })

  it("logtail runs three replicas sharing Redis, at most one away at a time, and each replica serves any tail", () => {
    const tail = find("Deployment", "logtail")
    assert.strictEqual(tail.spec.replicas, 3)
    // Several replicas need the shared store: with memory or file storage a tail made on one
    // replica could not be opened on another.
    assert.strictEqual(env(tail.spec.template.spec.containers[0]).STORAGE_ADAPTER.value, "redis")
    // Replaced one at a time, never below three ready.
    assert.strictEqual(tail.spec.strategy.rollingUpdate.maxUnavailable, 0)
    const budget = find("PodDisruptionBudget", "logtail")
    assert.strictEqual(budget.apiVersion, "policy/v1")
    assert.deepStrictEqual(budget.spec.selector.matchLabels, tail.spec.template.metadata.labels)
    assert.strictEqual(budget.spec.maxUnavailable, 1)
    // The lease fits the grace period: a replica stopped leaves no route longer than that.
    const lease = Number(/^(\d+)s$/.exec(env(tail.spec.template.spec.containers[0]).LOGTAIL_TAIL_LEASE.value)![1])
    assert.isAtMost(lease, tail.spec.template.spec.terminationGracePeriodSeconds)
  })

  it("the Grafana dashboard shows only metrics the code exports", () => {
    const dashboard = JSON.parse(readFileSync(join(root, "deployments/grafana/logtrain-dashboard.json"), "utf8")) as Doc
    const sources = (dir: string): Array<string> =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [readFileSync(join(dir, e.name), "utf8")] : []
      )
    const code = sources(join(root, "src")).join("\n")
    const used = new Set<string>()
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        for (const name of target.expr.match(/\b(?:logtrain|logtail|process|nodejs)_[a-z_]+/g) ?? []) used.add(name)
      }
    }
    assert.isAtLeast(used.size, 15)
    for (const name of used) assert.include(code, `"${name}"`, `${name} is not a metric logtrain exports`)
  })

  it("the README's \"Running in Kubernetes\" names every manifest and the dashboard", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8")
    const section = readme.slice(readme.indexOf("## Running in Kubernetes"))
    assert.isAbove(readme.indexOf("## Running in Kubernetes"), 0)
    for (const file of readdirSync(manifests)) assert.include(section, file)
    assert.include(section, "deployments/grafana/logtrain-dashboard.json")
    assert.isTrue(existsSync(join(root, "Dockerfile")))
  })
})
