/**
 * undici's Agent, by way of an ES module of ours: loaded with `import()` when the first HTTP drain
 * opens (see http.ts). A dynamic import of the CommonJS package itself gives, once bundled, a
 * module whose only export is `default`; a static named import here is resolved by the bundler.
 */
import { Agent } from "undici"

export const makeAgent = (options: Agent.Options): Agent => new Agent(options)
