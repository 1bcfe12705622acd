# Outlyne as a Hugging Face Docker Space (README front matter: sdk: docker, app_port: 7860).
#
#   serve-deps  a virtualenv with what serving needs (requirements-serve.txt: no torch, no nncf)
#   build       serve-deps + CPU-only torch and nncf; exports the model to OpenVINO IR, then computes the
#               concept text embeddings, into OUTLYNE_CACHE_DIR: nothing is downloaded or exported at start
#   runtime     serve-deps + the baked cache and the runtime code; runs as `user` (uid 1000)
#
# Layers go from what changes least to what changes most: dependencies, then the export (only the model,
# the precision and the export code feed it), then the concept embeddings (plus concepts.json), and the
# app's code last. Editing the web layer or a README rebuilds only the final code layers.
#
# Build arguments:
#   OUTLYNE_MODEL      a hub id, or a checkpoint folder put under models/ and named as /app/models/NAME
#   OUTLYNE_PRECISION  fp32 | int8 | int8-static
#   TORCH_INDEX_URL    where the CPU torch wheel comes from; empty = pip's own configuration
# A machine that reaches packages through a mirror passes its pip configuration as a build secret:
#   docker build --secret id=pip.conf,src=$HOME/.config/pip/pip.conf .
# (scripts/space_image.sh does this with a wheelhouse made by the host's pip; see the README.)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# PyPI's default torch wheel carries CUDA libraries (gigabytes) a Space cannot use.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG OUTLYNE_MODEL=google/siglip2-base-patch16-224
ARG OUTLYNE_PRECISION=int8-static

FROM ${PYTHON_IMAGE} AS serve-deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements-serve.txt /tmp/requirements-serve.txt
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    /opt/venv/bin/pip install -r /tmp/requirements-serve.txt

FROM serve-deps AS build
ARG TORCH_INDEX_URL
ENV PATH=/opt/venv/bin:$PATH \
    OUTLYNE_CACHE_DIR=/opt/outlyne-cache \
    HF_HOME=/tmp/hf-home
COPY requirements.txt /tmp/requirements.txt
# torch first, from its index, at the version requirements.txt pins; then the rest (nncf) from pip's.
# No bytecode: this stage runs two commands and is thrown away, and compiling torch costs a minute.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    export PIP_NO_COMPILE=1 && pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$(grep '^torch==' /tmp/requirements.txt)" \
    && pip install -r /tmp/requirements.txt
# The same folder as the runtime's, so a local checkpoint's path names the same cache entry in both.
WORKDIR /app
ARG OUTLYNE_MODEL
ARG OUTLYNE_PRECISION
ENV OUTLYNE_MODEL=${OUTLYNE_MODEL} OUTLYNE_PRECISION=${OUTLYNE_PRECISION}
COPY models/ ./models/
# Only the code the export runs (tests/test_docker.py runs these steps with exactly these files).
COPY outlyne/__init__.py outlyne/__main__.py outlyne/config.py outlyne/errors.py outlyne/files.py \
     outlyne/images.py outlyne/memory.py outlyne/progress.py ./outlyne/
COPY outlyne/cli/ ./outlyne/cli/
COPY outlyne/model/ ./outlyne/model/
# The config checks OUTLYNE_SEARCH with the search grammar alone (outlyne/search/spec.py imports no engine).
COPY outlyne/search/__init__.py outlyne/search/spec.py ./outlyne/search/
RUN python -m outlyne export
COPY concepts.json ./
COPY outlyne/concepts/ ./outlyne/concepts/
RUN python -m outlyne export --concepts

# On top of serve-deps, so its virtualenv is this image's layer as it is, not a second copy of it.
FROM serve-deps AS runtime
# Spaces run the container as uid 1000; a real passwd entry and home make HOME and user lookups work.
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin user
ARG OUTLYNE_MODEL
ARG OUTLYNE_PRECISION
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/user \
    OUTLYNE_MODEL=${OUTLYNE_MODEL} \
    OUTLYNE_PRECISION=${OUTLYNE_PRECISION} \
    OUTLYNE_CACHE_DIR=/opt/outlyne-cache \
    OUTLYNE_THREADS=2 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False
# Writable by the app's user: OpenVINO adds compiled blobs when the Space's CPU differs from the builder's.
COPY --from=build --chown=1000:1000 /opt/outlyne-cache /opt/outlyne-cache
WORKDIR /app
# The runtime code, owned by root (the app never writes it): no outlyne_dev/, tests/ or developer scripts.
COPY examples/ ./examples/
COPY scripts/healthcheck.py ./scripts/healthcheck.py
COPY concepts.json app.py ./
COPY outlyne/ ./outlyne/
USER 1000:1000
EXPOSE 7860
# Docker honours this; podman keeps it only with --format docker; Spaces ignore it.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "scripts/healthcheck.py"]
# app.py turns SIGTERM into a clean Gradio shutdown, so `docker stop` takes about a second, not the
# 10 s grace period and a kill.
CMD ["python", "app.py"]
