// What the bundle has in place of `ws` for @effect/platform-node's HTTP server (scripts/build.ts):
// the server makes a WebSocketServer (with `new`) only when a route accepts a WebSocket upgrade,
// and none of logtrain's or logtail's routes does, so `ws` (128 KB of code, evaluated at start)
// is left out.
export function WebSocketServer() {
  throw new Error("this build serves no WebSockets (scripts/no-websockets.js)")
}
