# Operyn Ingest: operyn-gateway, operyn-worker and operyn-admin in one image.
# Build:  docker build -t operyn-ingest .
# Run:    docker compose up   (see docker-compose.yml)

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build: the official Swift image, release build of the three executables ----
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis-dev libsqlite3-dev libzstd-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits reuse the resolved and fetched packages layer.
COPY Package.swift ./
RUN swift package resolve
COPY . .
RUN swift build -c release --static-swift-stdlib --product operyn-gateway \
    && swift build -c release --static-swift-stdlib --product operyn-worker \
    && swift build -c release --static-swift-stdlib --product operyn-admin \
    && mkdir -p /out \
    && for tool in operyn-gateway operyn-worker operyn-admin; do \
         cp "$(swift build -c release --show-bin-path)/$tool" /out/; \
       done

# ---- run: slim Debian with the C libraries only, as a non-root user ----
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis0.14 libsqlite3-0 libzstd1 zlib1g libstdc++6 ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/operyn --create-home operyn \
    && mkdir -p /var/lib/operyn/data \
    && chown -R operyn:operyn /var/lib/operyn
COPY --from=build /out/ /usr/local/bin/
USER operyn
WORKDIR /var/lib/operyn
ENV OPERYN_HOST=0.0.0.0 \
    OPERYN_METRICS_HOST=0.0.0.0 \
    OPERYN_LOG_FORMAT=json
EXPOSE 3001 9464
CMD ["operyn-gateway"]
