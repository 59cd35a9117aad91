// What the bundle has in place of @effect/platform-node's NodeServices for its HTTP server
// (scripts/build.ts): NodeHttpServer imports it for `layer` and `layerHttpServices`, which add
// every Node platform service — among them a child-process spawner and a terminal: 62 KB of code
// evaluated at start, and the terminal loads Node's `readline`. logtrain and logtail serve with `layerServer` and
// only the services they use (src/layers/http/HttpServer.ts); a `layer` that still asks for these
// fails when it is built. (Postgres and the persistent store import NodeServices themselves.)
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export const layer = Layer.effectDiscard(Effect.die(new Error("this build's HTTP server has no NodeServices (scripts/no-node-services.js)")))
