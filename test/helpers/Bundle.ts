/**
 * The bundle `npm run build` makes — what the image runs — for tests that start it. Built into a
 * directory named after a hash of what goes into it (dist/test-<hash>), so the test files that
 * need it share one build per state of the sources, and none disturbs another file that runs
 * dist/bundle. A build goes to a temporary directory first and is renamed into place whole.
 *
 * LOGTRAIN_BUNDLE=<path to a bundle's logtrain.js> runs the tests against that bundle instead
 * (e.g. one built from an older commit, to see a fault test fail there); the tests that run the
 * sources by default (LogtrainProcess.start) take it too. The build is kept for the next test file
 * (and run) with the same sources.
 */
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { beforeAll } from "vitest"

const root = join(import.meta.dirname, "../..")

export interface Bundle {
  readonly dir: string
  /** A program's script in it: `logtrain` or `logtail`. */
  readonly script: (program: "logtrain" | "logtail") => string
}

const files = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)]
  )

/** A hash of the sources, the build script and the modules it puts in place of others, and the locked dependencies. */
const sourcesHash = (): string => {
  const hash = createHash("sha256")
  for (const file of [...files(join(root, "src")), ...files(join(root, "bin")), ...files(join(root, "scripts")), join(root, "package-lock.json")].toSorted()) {
    hash.update(relative(root, file))
    hash.update(readFileSync(file))
  }
  return hash.digest("hex").slice(0, 16)
}

export const build = (): Bundle => {
  const given = process.env.LOGTRAIN_BUNDLE
  if (given !== undefined && given !== "") {
    const dir = dirname(given)
    return { dir, script: (program) => join(dir, `${program}.js`) }
  }
  const name = `test-${sourcesHash()}`
  const dir = join(root, "dist", name)
  if (!existsSync(join(dir, "logtail.js"))) {
    const temporary = `dist/tmp-${randomBytes(4).toString("hex")}`
    execFileSync(process.execPath, [join(root, "scripts/build.ts"), "--out", temporary], { cwd: root, stdio: "pipe" })
    try {
      renameSync(join(root, temporary), dir)
    } catch {
      // Another test file built the same sources meanwhile.
      rmSync(join(root, temporary), { recursive: true, force: true })
    }
  }
  // Builds of older sources, an hour old: no test file still runs them.
  for (const entry of readdirSync(join(root, "dist"))) {
    const path = join(root, "dist", entry)
    if (/^(test|tmp)-/.test(entry) && entry !== name && Date.now() - statSync(path).mtimeMs > 3_600_000) {
      rmSync(path, { recursive: true, force: true })
    }
  }
  return { dir, script: (program) => join(dir, `${program}.js`) }
}

/**
 * The bundle for a test file's tests: built (or found) before they run, as `build` does. Its
 * scripts are asked for inside the tests.
 */
export const forTests = (): Pick<Bundle, "script"> => {
  let built: Bundle | undefined
  beforeAll(() => {
    built = build()
  }, 120_000)
  return {
    script: (program) => {
      if (built === undefined) throw new Error("the bundle is built before the tests run: ask for its scripts inside them")
      return built.script(program)
    }
  }
}
