# Outlyne as a Hugging Face Docker Space (README front matter: sdk: docker, app_port: 7860).
#
#   serve-deps  a virtualenv with what serving needs (requirements-serve.txt: no torch, no nncf)
#   build       serve-deps + CPU-only torch and nncf; exports the model to OpenVINO IR and computes the
#               concept text embeddings into OUTLYNE_CACHE_DIR, so nothing is downloaded or exported at
#               start-up
#   runtime     the serve-deps virtualenv, the baked cache and the code; runs as uid 1000 (as Spaces do)
#
# Every RUN is pip with a pinned file or the outlyne CLI; the CLI steps and the runtime's claims (serves
# from the baked cache without torch, answers the health check) are exercised by tests/test_docker.py and
# tests/test_app_*.py. No Docker engine was available where this file was written: it has not been built.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS serve-deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements-serve.txt /tmp/requirements-serve.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements-serve.txt

FROM serve-deps AS build
ENV PATH=/opt/venv/bin:$PATH \
    OUTLYNE_CACHE_DIR=/opt/outlyne-cache \
    HF_HOME=/tmp/hf-home
# The PyTorch CPU index: PyPI's default torch wheel carries CUDA libraries (gigabytes) a Space cannot use.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
WORKDIR /src
COPY . .
ARG OUTLYNE_MODEL=google/siglip2-base-patch16-224
ARG OUTLYNE_PRECISION=int8-static
ENV OUTLYNE_MODEL=${OUTLYNE_MODEL} OUTLYNE_PRECISION=${OUTLYNE_PRECISION}
# 1) PyTorch -> OpenVINO IR (vision and text towers) into the cache.
RUN python -m outlyne export
# 2) Build the pipeline once on an example: concept text embeddings and compiled-model blobs are cached.
RUN python -m outlyne interrogate examples/house.png --json

FROM ${PYTHON_IMAGE} AS runtime
ARG OUTLYNE_MODEL=google/siglip2-base-patch16-224
ARG OUTLYNE_PRECISION=int8-static
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    OUTLYNE_MODEL=${OUTLYNE_MODEL} \
    OUTLYNE_PRECISION=${OUTLYNE_PRECISION} \
    OUTLYNE_CACHE_DIR=/opt/outlyne-cache \
    OUTLYNE_THREADS=2 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False
COPY --from=serve-deps /opt/venv /opt/venv
# Writable by the app's user: OpenVINO adds compiled blobs when the Space's CPU differs from the builder's.
COPY --from=build --chown=1000:1000 /opt/outlyne-cache /opt/outlyne-cache
WORKDIR /app
COPY --chown=1000:1000 app.py concepts.json ./
COPY --chown=1000:1000 outlyne ./outlyne
COPY --chown=1000:1000 examples ./examples
COPY --chown=1000:1000 scripts/healthcheck.py ./scripts/healthcheck.py
USER 1000:1000
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "scripts/healthcheck.py"]
CMD ["python", "app.py"]
