/**
 * The YAML parser, by way of an ES module of ours: loaded with `import()` only to read kubeconfig
 * files (see KubeConnection). A dynamic import of the package itself gives, once bundled, a module
 * without its named exports (`parse` was undefined); a static named import here is resolved by
 * the bundler.
 */
import { parse } from "yaml"

export const parseYaml = (text: string): unknown => parse(text)
