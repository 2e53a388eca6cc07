# syntax=docker/dockerfile:1
# Lookalike: the web UI, REST API and CLI in one image.
#
#   docker build -t lookalike .                                   # CPU torch (default)
#   docker build -t lookalike:gpu --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
#
# The default index is PyTorch's CPU-only wheel index: a CUDA build of torch adds several GB
# that a CPU server never uses. PyPI's own Linux torch wheels are the CUDA build, which is
# what the compose file's `gpu` profile asks for.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The same torch pins as the Makefile, so the image runs what the tests ran.
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch first, from its own index: the resolver below then finds it satisfied and never pulls
# the CUDA build from PyPI by accident.
RUN pip install --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
WORKDIR /src
# Dependencies before sources, so editing code does not re-download them on every build.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY README.md ./
COPY api ./api
COPY engine ./engine
COPY embedder ./embedder
COPY store ./store
COPY migrations ./migrations
RUN pip install --no-deps .

FROM python:${PYTHON_VERSION}-slim-bookworm
# libgomp: the OpenMP runtime torch and faiss load for their CPU kernels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 lookalike \
    && mkdir -p /data /library /models \
    && chown lookalike:lookalike /data /library /models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOOKALIKE_DATA_DIR=/data \
    LOOKALIKE_LIBRARY_DIR=/library \
    LOOKALIKE_MODEL_CACHE_DIR=/models \
    LOOKALIKE_HOST=0.0.0.0 \
    LOOKALIKE_PORT=5050
USER lookalike
WORKDIR /home/lookalike
EXPOSE 5050
# The image has no curl; Python is already there and /health needs no login.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5050/health', timeout=4)"]
ENTRYPOINT ["lookalike"]
CMD ["serve", "--host", "0.0.0.0", "--port", "5050"]
