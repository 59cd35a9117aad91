/**
 * The bundle `npm run build` makes — what the image runs — built for one test file into a
 * directory of its own (dist/test-…), so that it neither waits for nor disturbs another file that
 * runs dist/bundle.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { rmSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "../..")

export interface Bundle {
  readonly dir: string
  /** A program's script in it: `logtrain` or `logtail`. */
  readonly script: (program: "logtrain" | "logtail") => string
  readonly remove: () => void
}

export const build = (): Bundle => {
  const name = `dist/test-${randomBytes(4).toString("hex")}`
  execFileSync(process.execPath, [join(root, "scripts/build.ts"), "--out", name], { cwd: root, stdio: "pipe" })
  const dir = join(root, name)
  return { dir, script: (program) => join(dir, `${program}.js`), remove: () => rmSync(dir, { recursive: true, force: true }) }
}
