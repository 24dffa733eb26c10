#!/usr/bin/env bash
# One-shot GPU proof (see perf/gpu_proof.py for the stages). Run from the repository
# root on the lent GPU machine, after `bash perf/gpu_bundle.sh` built .gpubundle/ and
# .whl/ here and both were carried:
#
#   bash perf/gpu_proof.sh            # results in $OUT (the device tool's folder), else /tmp/gpu_proof_out
#
# Without a GPU it runs too (stages say what they skipped). Never aborts on a
# failing stage; everything printed also goes to $OUT/gpu_proof.log.
#
# Environment: GPU_PROOF_PYTHON (default python3), GPU_PROOF_SITE (where the carried
# wheels are installed, default /tmp/site), GPU_PROOF_ARGS (more perf.gpu_proof flags).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_proof_out}"
mkdir -p "$OUT"
PY="${GPU_PROOF_PYTHON:-python3}"
SITE="${GPU_PROOF_SITE:-/tmp/site}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

{
    echo "===== gpu_proof.sh $(date -u +%FT%TZ) on $(uname -n), python: $(command -v "$PY")"
    nvidia-smi -L 2>&1 || echo "(no nvidia-smi)"
    if compgen -G ".whl/*.whl" >/dev/null; then
        started=$SECONDS
        if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" .whl/*.whl; then
            export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
            echo "wheels: $(ls .whl/*.whl | wc -l) installed into $SITE in $((SECONDS - started))s"
        else
            echo "wheels: pip install FAILED; going on without them (stages needing them will say so)"
        fi
    else
        echo "wheels: none in .whl/ (nothing carried)"
    fi
    # shellcheck disable=SC2086  # GPU_PROOF_ARGS is a list of flags
    timeout -k 10 540 "$PY" -m perf.gpu_proof --out "$OUT" --bundle .gpubundle ${GPU_PROOF_ARGS:-}
    echo "perf.gpu_proof exit code: $?"
} 2>&1 | tee "$OUT/gpu_proof.log"
ls -la "$OUT"
