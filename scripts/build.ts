/**
 * `npm run build`: bundles logtrain and logtail with esbuild into dist/bundle — what the container
 * image runs. A bundle loads far less code than node_modules (only what is reached), which is most
 * of a Node process's memory at rest. Modules loaded on demand (Kubernetes, Postgres, gRPC, Redis)
 * stay separate chunks, loaded only when their feature is on.
 *
 * Layout (the relative paths the sources use hold in it):
 *   dist/bundle/logtrain.js, logtail.js, chunk-*.js
 *   dist/bundle/proto/*.proto     the Envoy access-log service definitions
 *   config/routes.json            the embedded default routes (copied by the Dockerfile)
 *
 * `--out dist/<name>` builds elsewhere (at the same depth, so those paths still hold): tests that
 * run a bundle build their own, while another test file may be running dist/bundle.
 */
import { build, type Plugin } from "esbuild"
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { isBuiltin } from "node:module"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const outArg = process.argv.indexOf("--out")
const out = outArg === -1 ? join(root, "dist/bundle") : join(root, process.argv[outArg + 1]!)
rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

/**
 * Node's builtin modules, imported statically, through `process.getBuiltinModule` rather than as ES
 * modules. Node makes an ES module of a builtin by reading every export, getters included — and
 * some getters load a great deal: `http.WebSocket` loads Node's own undici (fetch, with http2,
 * worker_threads, zlib, assert: ~4 MB at rest), `crypto.webcrypto` the Web Crypto modules,
 * `tls.rootCertificates` makes ~120 PEM strings, `fs.F_OK` prints a deprecation warning. Here
 * an import names only what the module has as a plain property, plus the getters below, which
 * load nothing new; an import of any other getter fails the build (esbuild: "No matching export";
 * a property read through `import * as` one: "will always be undefined", a warning, also fatal).
 */
const plainGetters: Record<string, ReadonlyArray<string>> = {
  fs: ["promises", "ReadStream", "WriteStream"],
  stream: ["promises"],
  dns: ["promises"],
  timers: ["promises"],
  http: ["globalAgent", "maxHeaderSize"],
  events: ["defaultMaxListeners", "captureRejections"],
  async_hooks: ["AsyncLocalStorage"],
  buffer: ["INSPECT_MAX_BYTES"]
}
const builtinsWithoutFacade: Plugin = {
  name: "builtins-without-facade",
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_/0-9]+$/ }, (args) => {
      if (!isBuiltin(args.path)) return undefined
      const id = args.path.replace(/^node:/, "")
      // require() (bundled CommonJS) and import() already skip the facade.
      return args.kind === "import-statement" ? { path: id, namespace: "builtin" } : { path: `node:${id}`, external: true }
    })
    b.onLoad({ filter: /.*/, namespace: "builtin" }, ({ path: id }) => {
      const getters = new Set(plainGetters[id] ?? [])
      const names = Object.entries(Object.getOwnPropertyDescriptors(process.getBuiltinModule(`node:${id}`)))
        .filter(([name, d]) => (d.get === undefined || getters.has(name)) && name !== "default" && /^[A-Za-z_$][\w$]*$/.test(name))
        .map(([name]) => name)
      // One export per name, each read in a call marked pure, so that esbuild leaves out the names
      // nothing imports: one destructuring of them all read every property, and some load more
      // modules when read (util's `diff` and `getCallSites` loaded worker_threads and a diff
      // algorithm; see the README, Memory).
      return {
        contents: `const m = process.getBuiltinModule("node:${id}")\nexport default m\n${
          names.map((name) => `export const ${name} = /* @__PURE__ */ (() => m.${name})()\n`).join("")
        }`,
        loader: "js"
      }
    })
  }
}

/**
 * @effect/platform-node's HTTP server imports `ws` (through its NodeWS module) for WebSocket
 * upgrades, which no route of ours accepts: scripts/no-websockets.js stands in for that module, so
 * `ws` is not loaded at start. (The Kubernetes client's own use of `ws` is untouched.)
 */
const noWebSockets: Plugin = {
  name: "no-websockets",
  setup(b) {
    b.onResolve({ filter: /^\.\/NodeWS\.js$/ }, (args) =>
      /@effect[\\/]platform-node[\\/]dist[\\/]NodeHttpServer\.js$/.test(args.importer)
        ? { path: join(root, "scripts/no-websockets.js") }
        : undefined)
  }
}

/**
 * The same server's module imports NodeServices (all of Node's platform services) for the layers
 * that add them, which logtrain and logtail do not use; its child-process spawner and terminal
 * were evaluated at start, and loaded Node's `readline`. scripts/no-node-services.js stands in for it
 * there (see that file).
 */
const noNodeServices: Plugin = {
  name: "no-node-services",
  setup(b) {
    b.onResolve({ filter: /^\.\/NodeServices\.js$/ }, (args) =>
      /@effect[\\/]platform-node[\\/]dist[\\/]NodeHttpServer\.js$/.test(args.importer)
        ? { path: join(root, "scripts/no-node-services.js") }
        : undefined)
  }
}

const result = await build({
  // The bin scripts, which call run(): a program module itself may end up in a shared chunk.
  entryPoints: { logtrain: join(root, "bin/logtrain.js"), logtail: join(root, "bin/logtail.js") },
  outdir: out,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  // `--minify` tries a minified bundle (see the README, Memory: what it saves).
  minify: process.argv.includes("--minify"),
  sourcemap: "linked",
  metafile: true,
  // pg's optional native binding; never used.
  external: ["pg-native"],
  // Effect's NodeRedis imports node-redis as `redis`, which adds the RedisBloom, RedisJSON,
  // RediSearch and RedisTimeSeries command modules to every client; logtail sends plain commands
  // and Lua scripts, and @redis/client (what `redis` wraps) exports the same createClient and
  // errors without them.
  alias: { redis: "@redis/client" },
  plugins: [builtinsWithoutFacade, noWebSockets, noNodeServices],
  // Bundled CommonJS code may call require(): give the ESM bundle one.
  banner: { js: "import { createRequire as __logtrainCreateRequire } from 'node:module'; const require = __logtrainCreateRequire(import.meta.url);" },
  logLevel: "warning"
})
// A warning is a defect here: e.g. a property read from a builtin that the imports above leave out.
if (result.warnings.length > 0) {
  console.error(`build: ${result.warnings.length} warning(s), above`)
  process.exit(1)
}
// What each chunk holds and imports, for `esbuild --analyze`-like questions (why is X loaded at start?).
writeFileSync(outArg === -1 ? join(root, "dist/meta.json") : join(out, "meta.json"), JSON.stringify(result.metafile))
cpSync(join(root, "src/layers/inputs/envoy/proto"), join(out, "proto"), { recursive: true })

const sizes = Object.entries(result.metafile.outputs)
  .filter(([file]) => file.endsWith(".js"))
  .map(([file, o]) => [file.slice(file.lastIndexOf("/") + 1), o.bytes] as const)
  .toSorted((a, b) => b[1] - a[1])
const total = sizes.reduce((sum, [, bytes]) => sum + bytes, 0)
console.log(`dist/bundle: ${sizes.length} files, ${(total / 1024 / 1024).toFixed(1)} MB (largest: ${sizes.slice(0, 3).map(([f, b]) => `${f} ${(b / 1024 / 1024).toFixed(1)} MB`).join(", ")})`)
