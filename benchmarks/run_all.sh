#!/usr/bin/env bash
# Run every benchmark one after another (never in parallel: the peers' budgets are wall-clock time).
# Usage: benchmarks/run_all.sh [DATA_DIR] [extra options, e.g. --smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:?usage: benchmarks/run_all.sh DATA_DIR [options]}"
shift || true
PY="${PYTHON:-.venv/bin/python}"
"$PY" benchmarks/throughput.py "$DATA/att_faces" --preset face "$@"
"$PY" benchmarks/identify_scale.py "$@"  # synthetic galleries: no data folder
"$PY" benchmarks/distributed.py "$@"  # random tensors: no data folder
"$PY" benchmarks/serve_load.py "$DATA/att_faces" "$@"  # `siamese serve` on loopback; skips without att_faces
"$PY" benchmarks/orl.py "$DATA/att_faces" "$@"
"$PY" benchmarks/spread_weight.py "$DATA/att_faces" --dataset orl "$@"  # on the models orl.py just trained
if [ -d "$DATA/att_faces" ]; then  # the second face protocol: ORL relit per image (a copy outside the repo)
    RELIT="$(mktemp -d)/att_relit"
    "$PY" benchmarks/relight.py "$DATA/att_faces" "$RELIT"
    "$PY" benchmarks/orl.py "$RELIT" --out "${RELIT}_results" "$@"
fi
"$PY" benchmarks/omniglot.py "$DATA/omniglot" "$@"
"$PY" benchmarks/cedar.py "$DATA/cedar" "$@"
"$PY" benchmarks/bhsig.py "$DATA/bhsig260-hindi" "$@"
"$PY" benchmarks/spread_weight.py "$DATA/cedar" --dataset cedar "$@"
"$PY" benchmarks/selfsup.py "$DATA/omniglot" "$@"
"$PY" benchmarks/selfsup.py "$DATA/omniglot" --step-rates 20 "$@"
"$PY" benchmarks/finetune.py "$DATA" --dataset orl "$@"
"$PY" benchmarks/finetune.py "$DATA" --dataset cedar "$@"
"$PY" benchmarks/lfw.py "$DATA/lfw" "$@"
if [ -d "$DATA/lfw" ]; then  # the ORL protocol from LFW-trained and LFW-pretrained starts
    "$PY" benchmarks/face_transfer.py "$DATA/att_faces" --lfw-images "$DATA/lfw/images" "$@"
    "$PY" benchmarks/identify.py "$DATA" "$@"  # open-set 1:N on ORL and unseen LFW people
fi
