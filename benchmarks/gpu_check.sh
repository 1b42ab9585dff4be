#!/usr/bin/env bash
# The CUDA path in one run of at most ~8 minutes: writes results/bench_gpu.json (see benchmarks/gpu_check.py).
#
#   bash benchmarks/gpu_check.sh            # on a CUDA machine, from the repository root
#   bash benchmarks/gpu_check.sh --setup    # first install .venv with a CUDA torch (needs network)
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh   # a dry run of every step on CPU
#
# Uses .venv/bin/python when it exists, else python3 with the repository on PYTHONPATH (the lent
# GPU images have CUDA torch and PyG but no Ray and no network: the Ray step is then skipped, with
# that reason in the JSON).
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--setup" ]]; then
    shift
    make setup TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128}" || exit 1
fi
PY=python3
[[ -x .venv/bin/python ]] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, torch_geometric" 2>/dev/null || { echo "gpu_check: needs torch and torch_geometric importable by $PY" >&2; exit 2; }
timeout "${GPU_CHECK_TIMEOUT_S:-480}" "$PY" benchmarks/gpu_check.py --device "${GPU_CHECK_DEVICE:-cuda}" "$@"
rc=$?
[[ $rc -eq 124 ]] && echo "gpu_check: stopped after ${GPU_CHECK_TIMEOUT_S:-480} s; results/bench_gpu.json holds the steps that finished" >&2
exit $rc
