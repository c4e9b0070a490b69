# OI-CDS service image. Two ways to build it (docker-compose.yml passes both arguments):
# - with registry access (the default): BASE_IMAGE=python:3.11-slim, WHEELS=pypi; the project
#   and its dependencies are installed from this context and PyPI;
# - offline (an air-gapped build system, or a machine with a Docker engine but no registry):
#   BASE_IMAGE=oi-cds-local/python:bookworm, WHEELS=local; deploy/local-images.sh makes the
#   base from Debian packages and the wheels on the host, and pip runs with --no-index.
# Every dependency ships as a wheel, so neither path needs a compiler.
ARG BASE_IMAGE=python:3.11-slim

# Install stage: a virtual environment with the project, copied whole into the final stage.
FROM ${BASE_IMAGE} AS install
# Lets a test (or an operator) prune this stage's leftovers without touching other images.
LABEL org.oi-cds.stage=install
ARG WHEELS=pypi
COPY deploy/wheels /wheelhouse
COPY pyproject.toml README.md /src/
COPY services /src/services
COPY fhir_profiles /src/fhir_profiles
RUN python3 -m venv /opt/oi-cds \
    && if [ "$WHEELS" = local ]; then \
         /opt/oi-cds/bin/pip install --no-cache-dir --no-index --find-links /wheelhouse oi-cds; \
       else \
         /opt/oi-cds/bin/pip install --no-cache-dir /src; \
       fi

# Final stage: the base, the virtual environment, a non-root user; no sources, no wheels.
FROM ${BASE_IMAGE}
ENV PATH=/opt/oi-cds/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WEB_CONCURRENCY=2
RUN useradd --system --uid 10001 --home-dir /app --create-home oicds
COPY --from=install /opt/oi-cds /opt/oi-cds
WORKDIR /app
USER oicds
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
# uvicorn workers from WEB_CONCURRENCY; listen on all interfaces inside the container
CMD ["sh", "-c", "exec oi-cds serve --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY}"]
