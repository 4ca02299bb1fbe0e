# Elevate: the bot (`elevate serve`).  Configure with ELEVATE_* variables (see README.md).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cards ./cards
COPY adapters ./adapters
COPY sandbox ./sandbox
COPY manifest ./manifest
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /var/lib/elevate --create-home elevate
COPY --from=build /install /usr/local
USER elevate
WORKDIR /var/lib/elevate
ENV ELEVATE_HOST=0.0.0.0 \
    ELEVATE_PORT=3978 \
    ELEVATE_DATABASE_URL=sqlite+aiosqlite:////var/lib/elevate/elevate.db \
    ELEVATE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 3978
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3978/healthz', timeout=4).status == 200 else 1)"
CMD ["elevate", "serve"]
