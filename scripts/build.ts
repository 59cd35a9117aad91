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
 */
import { build } from "esbuild"
import { cpSync, mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const out = join(root, "dist/bundle")
rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

const result = await build({
  // The bin scripts, which call run(): a program module itself may end up in a shared chunk.
  entryPoints: { logtrain: join(root, "bin/logtrain.js"), logtail: join(root, "bin/logtail.js") },
  outdir: out,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  minify: false,
  sourcemap: "linked",
  metafile: true,
  // pg's optional native binding; never used.
  external: ["pg-native"],
  // Bundled CommonJS code may call require(): give the ESM bundle one.
  banner: { js: "import { createRequire as __logtrainCreateRequire } from 'node:module'; const require = __logtrainCreateRequire(import.meta.url);" },
  logLevel: "warning"
})
cpSync(join(root, "src/layers/inputs/envoy/proto"), join(out, "proto"), { recursive: true })

const sizes = Object.entries(result.metafile.outputs)
  .filter(([file]) => file.endsWith(".js"))
  .map(([file, o]) => [file.slice(file.lastIndexOf("/") + 1), o.bytes] as const)
  .toSorted((a, b) => b[1] - a[1])
const total = sizes.reduce((sum, [, bytes]) => sum + bytes, 0)
console.log(`dist/bundle: ${sizes.length} files, ${(total / 1024 / 1024).toFixed(1)} MB (largest: ${sizes.slice(0, 3).map(([f, b]) => `${f} ${(b / 1024 / 1024).toFixed(1)} MB`).join(", ")})`)
