# One image for both services; the command picks which one runs:
#   calculator (default):  gunicorn -c python:servicekit.gunicorn_conf 'calculator.app:create_app()'
#   gateway:               gunicorn -c python:servicekit.gunicorn_conf 'gateway.app:create_app()'
# BASE_IMAGE is an argument so an offline build can pass a locally made base.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY calculator ./calculator
COPY gateway ./gateway
COPY servicekit ./servicekit
# constraints.txt pins every package of the tree: the image gets what the tests ran.
RUN /opt/venv/bin/pip install --no-compile -c constraints.txt . \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${BASE_IMAGE}
# checkov:skip=CKV_DOCKER_7:the base is the ARG above, pinned to python:3.11.13-slim-bookworm (tests/test_image.py checks it); checkov does not resolve ARGs
# UID 10001, not Istio's 1337 (whose traffic the sidecar does not intercept),
# and group 0 so that OpenShift's arbitrary UIDs, always in group 0, can write
# the data directory too.
RUN useradd --uid 10001 --gid 0 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin calculadora \
 && mkdir /data \
 && chown 10001:0 /data \
 && chmod 0775 /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data
WORKDIR /data
USER 10001:0
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["gunicorn", "-c", "python:servicekit.gunicorn_conf", "calculator.app:create_app()"]
