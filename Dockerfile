# syntax=docker/dockerfile:1
# edge-agent as a container, for sites that deploy containers rather than systemd services.
# (On a plain gateway, deploy/install.sh and the systemd unit are the recommended way: deploy/README.md.)
#
# Build:   docker build -t edge-agent .
# Run:     docker run -d --name edge-agent --restart unless-stopped --stop-timeout 30 \
#            -v /etc/edge-agent:/etc/edge-agent:ro \
#            -v edge-agent-data:/var/lib/edge-agent \
#            edge-agent
# Serial:  add  --device /dev/ttyUSB0 --group-add dialout   (Modbus RTU; the image's user is in dialout too)
# Health:  enable the health endpoint in the config and publish it, e.g. -p 127.0.0.1:9753:9753 with the
#          endpoint bound to 0.0.0.0 inside the container (it is unauthenticated: keep the host side on loopback)
# Logs:    JSON lines for shippers: docker run ... edge-agent --log-format json run -c /etc/edge-agent/config.yaml
#
# The config's agent.data_dir must be /var/lib/edge-agent (the volume); /etc/edge-agent/config.yaml is the
# config (deploy/config.example.yaml is a starting point). Mount /etc/edge-agent read-write, owned by uid
# 10001, only if remote config changes must survive a container restart.
# Multi-architecture (Raspberry Pi): docker buildx build --platform linux/arm64 -t edge-agent .
# On linux/arm64 every dependency installs from PyPI wheels, so no compiler is needed. On linux/arm/v7 PyPI
# has no wheels for numpy, scipy, PyYAML and cffi: add an index that has them, e.g.
#   --platform linux/arm/v7 --build-arg PIP_EXTRA_INDEX_URL=https://www.piwheels.org/simple
# (deploy/check-arm-wheels.sh checks both; its findings are in deploy/README.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the wheel, from the sources only ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY edge_agent ./edge_agent
COPY drivers ./drivers
COPY diagnostics ./diagnostics
RUN python -m pip wheel --no-cache-dir --no-deps -w /dist .

# --- runtime: a virtualenv with the wheel and its dependencies, run as an unprivileged user --------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/edge-agent/venv/bin:$PATH

# Fixed ids so volume ownership is predictable; dialout (gid 20 on Debian) for serial adapters.
RUN groupadd --system --gid 10001 edge-agent \
 && useradd --system --uid 10001 --gid edge-agent --groups dialout --home-dir /var/lib/edge-agent \
      --no-create-home --shell /usr/sbin/nologin edge-agent \
 && install -d -o edge-agent -g edge-agent -m 0750 /var/lib/edge-agent \
 && install -d -o root -g edge-agent -m 0770 /etc/edge-agent

COPY --from=build /dist/ /tmp/dist/
# an extra package index for platforms PyPI has no wheels for (see the top of this file); empty: PyPI only
ARG PIP_EXTRA_INDEX_URL=
RUN python -m venv /opt/edge-agent/venv \
 && /opt/edge-agent/venv/bin/pip install /tmp/dist/edge_agent-*.whl \
 && rm -rf /tmp/dist \
 && edge-agent --version

COPY --chown=root:edge-agent --chmod=0640 deploy/config.example.yaml /etc/edge-agent/config.example.yaml

USER edge-agent
WORKDIR /var/lib/edge-agent
VOLUME ["/var/lib/edge-agent"]
EXPOSE 9753

# SIGTERM is the graceful stop (in-flight publishes finish or stay in the outbox); give it --stop-timeout 30.
STOPSIGNAL SIGTERM
ENTRYPOINT ["edge-agent"]
CMD ["run", "-c", "/etc/edge-agent/config.yaml"]
