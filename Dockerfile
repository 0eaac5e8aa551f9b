# configpin webhook image: `configpin serve` on a slim Python, as a non-root user.
# Build: docker build -t configpin:0.1.0 .
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/configpin
COPY pyproject.toml requirements.lock README.md ./
COPY app ./app
# The lock pins every runtime dependency; -c applies it without installing dev tools.
RUN /opt/configpin/bin/pip install -c requirements.lock . \
    && /opt/configpin/bin/pip uninstall --yes pip setuptools wheel \
    && find /opt/configpin -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11.7-slim-bookworm
COPY --from=build /opt/configpin /opt/configpin
ENV PATH=/opt/configpin/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so that runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
EXPOSE 8443
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz.
ENTRYPOINT ["configpin"]
CMD ["serve"]
