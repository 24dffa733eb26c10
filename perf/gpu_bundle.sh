#!/usr/bin/env bash
# Build .gpubundle/ (tritonserver + python backend + 3.12 stub, xz) and .whl/ (cp312
# wheels) for perf/gpu_proof.sh, check them, and print what will travel. Needs the
# project's .venv (the nvidia-pytriton wheel is taken from it) and PyPI access.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m perf.gpu_bundle "$@"
