#!/usr/bin/env bash
# Build the Hugging Face Space image with docker or podman, run it and check it as a visitor would.
# Run it with the project's virtualenv active (the checks use gradio_client); options: --help.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" scripts/space_image.py "$@"
