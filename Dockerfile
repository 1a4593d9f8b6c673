# sparecast: the API (default command) and the pipeline's schedule server, one image.
# Build: docker build -t sparecast .   (not built in CI here: the test machine has no Docker
# engine; tests/test_deploy.py checks this file's and compose.yaml's structure instead)
FROM python:3.11-slim

# LightGBM and the numba kernels need the OpenMP runtime; nothing else comes from apt
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The README's install steps (./dev.sh): a virtual environment, pip upgraded, sparecast
# installed into it; here with the [ops] extra (Prefect, MLflow) for `sparecast pipeline serve`
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m venv "$VIRTUAL_ENV" \
 && python -m pip install --upgrade pip \
 && python -m pip install ".[ops]"

# A non-root user owns the data directory (the output directory served: DIR of --data)
RUN groupadd --system --gid 10001 sparecast \
 && useradd --system --uid 10001 --gid sparecast --home-dir /data --shell /usr/sbin/nologin sparecast \
 && mkdir -p /data \
 && chown sparecast:sparecast /data
USER sparecast
WORKDIR /data
VOLUME ["/data"]

ENV SPARECAST_SERVICE__HOST=0.0.0.0 \
    SPARECAST_SERVICE__PORT=8000
EXPOSE 8000

# /health answers 200 when ok or degraded, 503 when both the store and the cache are down
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["sparecast", "serve", "--data", "/data"]
