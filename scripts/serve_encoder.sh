#!/usr/bin/env bash
# The encoder as a Triton service (KServe V2 over HTTP), in its own environment.
#
#   bash scripts/serve_encoder.sh --port 8000 [python -m outlyne serve-encoder options]
#   bash scripts/serve_encoder.sh --build-only        # only (re)build the environment (CI does this)
#
# On first use (and whenever requirements-encoder.txt changes) it builds .venv-encoder with pip, through
# the same package index configuration pip already uses here. Then it makes sure the model named by
# OUTLYNE_MODEL / OUTLYNE_PRECISION is exported into OUTLYNE_CACHE_DIR (with the app's Python: the service
# environment has no torch) and runs the service in the foreground; Ctrl+C or SIGTERM stop it cleanly.
# Clients: OUTLYNE_ENCODER=kserve-v2://127.0.0.1:PORT python app.py
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${OUTLYNE_ENCODER_VENV:-$ROOT/.venv-encoder}
REQUIREMENTS=$ROOT/requirements-encoder.txt
STAMP=$VENV/.outlyne-requirements.sha256
APP_PYTHON=${OUTLYNE_APP_PYTHON:-$(command -v python || command -v python3)}

build_environment() {
    local wanted
    wanted=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
    if [[ -x $VENV/bin/python && -f $STAMP && $(cat "$STAMP") == "$wanted" ]]; then
        return 0
    fi
    echo "serve_encoder: building $VENV from requirements-encoder.txt" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS" >&2
    "$VENV/bin/python" -c "import pytriton.triton, openvino, transformers" >&2
    echo "$wanted" >"$STAMP"
}

build_environment
if [[ ${1:-} == --build-only ]]; then
    echo "$VENV"
    exit 0
fi

# Exporting needs torch, which only the app's environment has; with a warm cache this only verifies it.
if ! (cd "$ROOT" && "$APP_PYTHON" -m outlyne export >&2); then
    echo "serve_encoder: could not export with $APP_PYTHON; serving what the cache holds" >&2
fi

# A pyenv-built Python keeps libpython in its own lib dir, where Triton's Python backend cannot find it.
LIBDIR=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')")
export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
exec "$VENV/bin/python" -m outlyne serve-encoder "$@"
