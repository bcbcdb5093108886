# hk-policy-monitor as a long-running service: `docker compose up -d` (see docker-compose.yml), or
#   docker build -t hk-policy-monitor . && docker run -d -v monitor-state:/app/state --env-file .env hk-policy-monitor
# README.md, "Running in Docker", has the details. CI builds and runs it with podman: .ci/container-smoke.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# Debian's own python3 refuses system-wide pip installs (PEP 668): the app lives in a venv.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TZ=Asia/Hong_Kong \
    MONITOR_CONFIG=/app/sources.toml \
    MONITOR_DB=/app/state/monitor.db

WORKDIR /build
COPY pyproject.toml README.md ./
COPY monitor ./monitor
# An optional build secret `ca` (a CA bundle, for networks whose HTTPS goes through an intercepting
# proxy): `docker build --secret id=ca,src=/path/to/ca.pem .`. It is mounted for this step only and
# is in no layer of the image; without it pip uses its own certificates.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/venv \
    && pip install --no-cache-dir . \
    && rm -rf /build

# A numeric non-root user (Kubernetes' runAsNonRoot can check it); it owns only the state folder.
RUN groupadd --gid 10001 monitor \
    && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin monitor \
    && mkdir -p /app/state \
    && chown 10001:10001 /app/state
# The shipped sources; mount your own over it, or point MONITOR_CONFIG elsewhere.
COPY sources.toml /app/sources.toml
WORKDIR /app
USER 10001:10001
VOLUME ["/app/state"]

# Healthy while the last round finished within twice the shortest interval (5 minutes' grace at start).
HEALTHCHECK --interval=1m --timeout=10s --start-period=5m --retries=3 CMD ["policy-monitor", "health"]
# `docker stop` sends SIGTERM: running sources finish (3 s at most), pending alerts may start for 3 s more, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["policy-monitor"]
CMD ["run"]
