# OI-CDS service image. Not built on the project's machines (no Docker engine there); the
# file is checked statically by tests/test_deployment.py.

# Build stage: wheels for the project and its dependencies (build tools stay here).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
COPY fhir_profiles ./fhir_profiles
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Final stage: slim Python, the wheels, a non-root user; no compilers.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WEB_CONCURRENCY=2
RUN useradd --system --uid 10001 --home-dir /app --create-home oicds
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
USER oicds
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
# uvicorn workers from WEB_CONCURRENCY; listen on all interfaces inside the container
CMD ["sh", "-c", "exec oi-cds serve --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY}"]
