# syntax=docker/dockerfile:1
# The recovery worker (console script `recovery-worker`), as docker-compose.yml runs it.
#
# An exact Python tag, not `3.11-slim`, so a rebuild gets the same interpreter; pin the digest
# too where you build (`docker buildx imagetools inspect python:3.11.15-slim-bookworm`), or
# override the whole reference: `docker build --build-arg PYTHON_IMAGE=python:3.11.15-slim-bookworm@sha256:…`.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

# Build stage: install the package and its runtime dependencies (no dev extras) into a venv,
# so the runtime stage copies one directory and carries no pip cache or build files.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/recovery-orchestrator
WORKDIR /src
# Only what the package is built from (pyproject names README.md as its readme).
COPY pyproject.toml README.md worker.py ./
COPY workflows/ workflows/
COPY activities/ activities/
COPY recovery_breakers/ recovery_breakers/
COPY starter/ starter/
COPY enhanced_agent_bus/ enhanced_agent_bus/
# A regular, non-editable install: the image must not depend on /src.
RUN /opt/recovery-orchestrator/bin/pip install .

FROM ${PYTHON_IMAGE}
# A fixed numeric uid, so orchestrators that check "runAsNonRoot" can see it is not root.
RUN groupadd --system --gid 10001 recovery \
 && useradd --system --uid 10001 --gid recovery --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin recovery \
 && install -d -o recovery -g recovery /srv/recovery-orchestrator
COPY --from=build /opt/recovery-orchestrator /opt/recovery-orchestrator
ENV PATH=/opt/recovery-orchestrator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The worker reads ./recovery.toml from here when RECOVERY_SERVICES_FILE is not set
# (docker-compose.yml mounts ./deploy here read-only). It is writable by the worker so the
# image also runs on its own with the embedded SQLite circuit store (sqlite:///.recovery/…).
WORKDIR /srv/recovery-orchestrator
USER 10001:10001

# The worker serves no port to probe. Healthy means: the worker (PID 1, exec-form entry
# point) is neither a zombie nor stopped, and the Temporal frontend it polls accepts TCP
# connections (a worker cut off from Temporal does nothing). No Temporal RPC here: that would
# need the API key or client certificate, and a second connection every 30 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, socket; state = open('/proc/1/stat').read().rsplit(')', 1)[1].split()[0]; assert state not in 'ZTt', 'worker process state ' + state; host, _, port = os.environ.get('TEMPORAL_ADDRESS', '').rpartition(':'); host and socket.create_connection((host.strip('[]'), int(port)), timeout=3).close()"]

# Exec form: the worker is PID 1 and gets SIGTERM itself, which it handles by finishing
# in-flight activities (graceful shutdown, up to 10 s) before it exits.
ENTRYPOINT ["recovery-worker"]
