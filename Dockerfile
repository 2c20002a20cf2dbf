# gatewayd container image.
#   docker build -t gatewayd .
#   docker run -d --name gatewayd --read-only --tmpfs /tmp --cap-drop ALL \
#     -v /srv/gatewayd/gatewayd.yaml:/etc/gatewayd/gatewayd.yaml:ro -v gatewayd-state:/var/lib/gatewayd \
#     -p 127.0.0.1:9108:9108 gatewayd
#   docker compose up --build             # the daemon against the cloud emulator (compose.yaml)
# The inventory is expected read-only at /etc/gatewayd/gatewayd.yaml ($GATEWAYD_CONFIG); its state_dir
# should be /var/lib/gatewayd (the volume) and http.listen 0.0.0.0:9108 for the health check and the
# published port. Secrets: Docker/compose secrets appear as /run/secrets/NAME, so write ${file:/run/secrets/NAME}.
# Base images are pinned by tag (Python minor + Debian release); pin by digest (@sha256:...) in a release
# pipeline that also rebuilds for security updates.

# ---- builder: a self-contained virtualenv in /opt/gatewayd ---------------------------------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/gatewayd

# Only what the wheel is built from (see .dockerignore): a change to tests or docs keeps this layer.
COPY pyproject.toml README.md /src/
COPY gatewayd/ /src/gatewayd/

# pip builds the project's wheel and installs it with its dependencies (all of them ship binary wheels
# for amd64 and arm64, so no compiler is needed), byte-compiling everything at build time: the image
# runs with a read-only root file system and PYTHONDONTWRITEBYTECODE.
RUN /opt/gatewayd/bin/pip install --no-cache-dir /src \
    && /opt/gatewayd/bin/gatewayd --version

# ---- runtime: no compiler, no sources, no root -----------------------------------------------------------
FROM python:3.11-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="gatewayd" \
      org.opencontainers.image.description="Thing+ Open API Gateway daemon: sensors, RCMS and loctube polling, durable outbox" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/gatewayd/bin:$PATH \
    GATEWAYD_CONFIG=/etc/gatewayd/gatewayd.yaml \
    GATEWAYD_LOG_LEVEL=info

# A fixed uid/gid (10001) so that volume ownership is predictable across rebuilds and hosts.
RUN groupadd --system --gid 10001 gatewayd \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/gatewayd \
       --shell /usr/sbin/nologin gatewayd \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/gatewayd \
    && install -d -m 0755 /etc/gatewayd

COPY --from=builder /opt/gatewayd /opt/gatewayd
# Reference inventories: `docker run --rm gatewayd demo --config /usr/share/gatewayd/demo.yaml --duration 30`
COPY config/demo.yaml config/demo-mqtt.yaml config/container.yaml /usr/share/gatewayd/

USER 10001:10001
WORKDIR /var/lib/gatewayd
# Declared after the directory exists so that a new named volume starts owned by 10001, mode 0700.
VOLUME ["/var/lib/gatewayd"]
EXPOSE 9108

# `gatewayd health` asks the daemon's own /healthz (a 0.0.0.0 listen address is asked on loopback);
# its --timeout stays under Docker's so that a slow answer is reported, not killed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["gatewayd", "health", "--timeout", "4"]

# The daemon stops cleanly on SIGTERM: pending points get 10 s, the rest stay in the outbox. Give it
# more than that before the SIGKILL (`docker stop -t 30`, compose stop_grace_period: 30s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gatewayd"]
CMD ["run"]
