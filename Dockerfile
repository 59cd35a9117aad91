# logtrain and logtail. The build is `npm run build` (tested by the test suite); this file only
# runs it and keeps what runs: the bundle, its .proto files, the embedded default routes.
#   docker build -t logtrain .
#   docker run logtrain                                   # logtrain
#   docker run logtrain node dist/bundle/logtail.js       # logtail
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
# A small young generation: V8's default let the TCP relay's peak RSS reach 284 MB (4 MB: 164 MB).
# Under a memory limit (the DaemonSet's 128Mi, or MEMORY_LIMIT) logtrain starts itself again with
# 1 MB and without Turbofan (bin/v8-flags.js: the 128Mi envelope, at a price in CPU per line).
# Override NODE_OPTIONS to change it.
ENV NODE_OPTIONS=--max-semi-space-size=4
# glibc gives each thread that allocates its own arena; two are enough for Node's few threads and
# cost ~4 MB less RSS in the reference workload (npm run bench -- --only reference).
ENV MALLOC_ARENA_MAX=2
# Node's compile cache: from the second start on a node, the code is loaded from it instead of
# parsed again, which leaves ~7 MB less memory behind (measured: idle RSS 85.6 → 78.5 MB). In the
# DaemonSet this is on the host's STATE_DIR volume; where it cannot be written, Node goes without.
ENV NODE_COMPILE_CACHE=/var/lib/logtrain/compile-cache
COPY --from=build /src/dist/bundle ./dist/bundle
COPY --from=build /src/config ./config
USER node
EXPOSE 9000 9001 9002 9003/udp 9004
# Node is PID 1: logtrain handles SIGTERM and SIGINT itself (finishes reading, flushes, exits 0)
# and starts no child processes, so no init is needed.
CMD ["node", "dist/bundle/logtrain.js"]
