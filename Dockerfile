# GoModel: one image, several roles (web, worker, beat, migrate, all; or any manage.py command).
#   docker build -t gomodel .                      # on python:3.11-slim-bookworm
#   docker build --build-arg BASE_IMAGE=gomodel-base:bookworm -t gomodel .   # any Debian/Ubuntu with python3 + venv
# See README "Deploying" and compose.yaml. The build needs a package index (PyPI, or PIP_INDEX_URL);
# a private index's pip.conf and CA bundle go in deploy/pip/ (pip.conf, ca.crt), used by the builder only.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- builder: wheels for requirements.txt, installed into a venv that the runtime stage copies --------------
FROM ${BASE_IMAGE} AS builder
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=120
COPY deploy/pip/ /etc/gomodel-build/pip/
COPY requirements.txt /tmp/requirements.txt
RUN set -eu; \
    if [ -s /etc/gomodel-build/pip/pip.conf ]; then export PIP_CONFIG_FILE=/etc/gomodel-build/pip/pip.conf; fi; \
    if [ -s /etc/gomodel-build/pip/ca.crt ]; then export PIP_CERT=/etc/gomodel-build/pip/ca.crt SSL_CERT_FILE=/etc/gomodel-build/pip/ca.crt; fi; \
    if [ -n "$PIP_INDEX_URL" ]; then export PIP_INDEX_URL; else unset PIP_INDEX_URL; fi; \
    if [ -n "$PIP_EXTRA_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL; else unset PIP_EXTRA_INDEX_URL; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip wheel --wheel-dir /tmp/wheels -r /tmp/requirements.txt; \
    /opt/venv/bin/pip install --no-index --find-links /tmp/wheels -r /tmp/requirements.txt; \
    /opt/venv/bin/pip uninstall -y pip setuptools >/dev/null 2>&1 || true; \
    find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +; \
    rm -rf /tmp/wheels

# ---- runtime: the venv, the code, a non-root user -------------------------------------------------------
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=gomodel.settings \
    GOMODEL_VAR_DIR=/var/lib/gomodel \
    HOST=0.0.0.0 \
    PORT=8080
RUN set -eu; \
    groupadd --system --gid 10001 gomodel; \
    useradd --system --uid 10001 --gid gomodel --home-dir /var/lib/gomodel --no-create-home \
            --shell /usr/sbin/nologin gomodel; \
    install -d -o gomodel -g gomodel -m 0700 /var/lib/gomodel
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY manage.py requirements.txt .env.example ./
COPY templates/ templates/
COPY providers/ providers/
COPY accounting/ accounting/
COPY gomodel/ gomodel/
# Byte-compiled once, as root, so the (read-only to it) code never needs writing by the gomodel user.
RUN python3 -m compileall -q /app /opt/venv/lib > /dev/null || true
USER gomodel
EXPOSE 8080
VOLUME ["/var/lib/gomodel"]
# web and all answer /health; worker, beat and migrate have no HTTP port (the check passes for them).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["python3", "-m", "gomodel.roles", "healthcheck"]
ENTRYPOINT ["python3", "-m", "gomodel.roles"]
CMD ["web"]
