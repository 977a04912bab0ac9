# ChatWait's image: `docker build -t chatwait .`, or `docker compose up` (compose.yaml).
# Two stages: the first installs every dependency and builds dist/ (the server, the chat page, the
# ReDoc bundle); the second holds only dist/ and the runtime dependencies, and runs as `node`.
# Debian (glibc), not Alpine: better-sqlite3's prebuilt binary for linux-x64/arm64 needs no compiler.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The default store (DATABASE_URL=sqlite:./data/chatwait.db) writes here; mount a volume to keep it.
RUN mkdir -p data && chown node:node data
USER node
EXPOSE 8000
# Readiness, not liveness: healthy means this instance can serve (its store and other dependencies
# answer), which is what compose's `depends_on: service_healthy` waits for. Slim images have no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/api/v1/health/ready', { signal: AbortSignal.timeout(4000) }).then((response) => process.exit(response.ok ? 0 : 1), () => process.exit(1))"]
# node itself as the command, never `npm start` (which would rebuild, and does not pass SIGTERM on
# reliably): SIGTERM reaches ChatWait, which drains its streams (SHUTDOWN_DRAIN_SECONDS) and exits.
CMD ["node", "--enable-source-maps", "dist/main.js"]
