# The API, the projection workers and the CLI in one image: `ugc serve`, `ugc project`, `ugc ...`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# `ugc backup` and `ugc restore` run pg_dump and pg_restore, which must be at least the server's
# major version (PostgreSQL 16 in docker-compose.yml): Debian bookworm carries 15, so the client
# tools come from the PostgreSQL project's own apt repository (its key fetched over HTTPS).
RUN python -c "import urllib.request; urllib.request.urlretrieve('https://www.postgresql.org/media/keys/ACCC4CF8.asc', '/usr/share/keyrings/pgdg.asc')" \
    && echo "deb [signed-by=/usr/share/keyrings/pgdg.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-16 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY constraints.txt pyproject.toml README.md ./
COPY ugc ugc
COPY commands commands
COPY projections projections
COPY readmodels readmodels
COPY api api
# The versions of constraints.txt, the same ones `make run` and `make test` install.
RUN pip install --constraint constraints.txt . \
    && useradd --system --uid 10001 --home-dir /app ugc \
    && mkdir -p /data/media /data/var /data/audit /backups && chown -R ugc /data /backups

USER ugc
ENV UGC_VAR_DIR=/data/var \
    UGC_MEDIA_DIR=/data/media
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"
CMD ["ugc", "serve", "--host", "0.0.0.0", "--port", "8000"]
