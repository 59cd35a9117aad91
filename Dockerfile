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
# A small young generation, for the 128Mi envelope: V8's default let the TCP relay's peak RSS reach
# 284 MB (4 MB: 164 MB). 1 MB against 4 (npm run bench, same hour): the stress benchmark's peak RSS
# 129-132 MiB against 140, the reference workload 100-101 MB on average against 103-105; the price
# is CPU per line at full speed, whose garbage is collected more often: the TCP relay 2.3-2.6
# CPU-s per million lines against 1.8-2.1 (2 MB: 2.3). Override NODE_OPTIONS to change it.
ENV NODE_OPTIONS=--max-semi-space-size=1
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
