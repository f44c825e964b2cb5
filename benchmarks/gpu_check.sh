#!/usr/bin/env bash
# GPU check: the engine's figures on a CUDA machine in about 7 minutes, as key=value lines.
#
#   bash benchmarks/gpu_check.sh                 # from the repository root, or anywhere
#   CAMVID_MINUTES=5 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#
# Sections (each line of a section is prefixed with its name):
#   train_   benchmarks/train_throughput.py --device cuda: ratio_vs_bare (engine step vs a bare
#            loop, goal >= 0.97), amp_speedup (AMP + channels_last vs float32 + NCHW)
#   camvid_  benchmarks/camvid.py --device cuda --minutes $CAMVID_MINUTES: val_miou, per-class
#            IoU, data_wait_share and peak_gpu_memory_mb of the last epoch
#   infer_   benchmarks/inference.py --device cuda: PyTorch vs ONNX Runtime (CUDA provider) on
#            a 480x360 frame, mask agreement and milliseconds; onnx_cuda=unavailable when the
#            installed onnxruntime has no CUDA provider
# then a summary of the headline figures. Needs only the repository (no Qt) and, for the
# CamVid run, ../shared/data/camvid. Without a CUDA GPU it prints gpu=none and exits 0.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
MINUTES=${CAMVID_MINUTES:-5}
DEVICE=${GPU_CHECK_DEVICE:-cuda}  # cpu only to try the script itself on a machine without a GPU
START=$(date +%s)

if [ "$DEVICE" != cpu ]; then
    # nvidia-smi first: answers in milliseconds where there is no driver, before torch loads
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1 \
        || ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        echo "gpu=none"
        echo "gpu_check: no CUDA GPU here (or torch cannot use it); nothing measured" >&2
        exit 0
    fi
    echo "gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 | tr ' ' '_')"
else
    echo "gpu=none_forced_cpu"
fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
FAILED=0

# section NAME SECONDS COMMAND...: run it, keep its key=value lines prefixed with NAME_
section() {
    local name=$1 limit=$2
    shift 2
    local t0 rc
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    rc=$?
    grep -E '^[A-Za-z0-9_]+=' "$OUT/$name.out" | sed "s/^/${name}_/"
    echo "${name}_s=$(($(date +%s) - t0))"
    if [ $rc -ne 0 ]; then
        FAILED=1
        echo "${name}_error=exit_${rc}"
        echo "gpu_check: $name failed (exit $rc); its last lines:" >&2
        tail -n 15 "$OUT/$name.err" >&2
    fi
}

value() {  # value NAME KEY: a figure a section printed, or NA
    local found
    found=$(grep -E "^$2=" "$OUT/$1.out" 2>/dev/null | tail -n 1 | cut -d= -f2-)
    echo "${found:-NA}"
}

section train 150 "$PY" benchmarks/train_throughput.py --device "$DEVICE" --no-data-wait
section camvid $(( ${MINUTES%.*} * 60 + 150 )) "$PY" benchmarks/camvid.py --device "$DEVICE" --minutes "$MINUTES"
section infer 180 "$PY" benchmarks/inference.py --device "$DEVICE" --runs 20

echo "ratio_vs_bare=$(value train ratio_vs_bare)"
echo "amp_speedup=$(value train amp_speedup)"
echo "data_wait_share=$(value camvid data_wait_share)"
echo "peak_gpu_memory_mb=$(value camvid peak_gpu_memory_mb)"
echo "camvid_${MINUTES}min_val_miou=$(value camvid val_miou)"
if [ "$(value infer onnx_cuda)" = unavailable ]; then
    echo "onnx_cuda=unavailable"
else
    echo "onnx_cuda=$( [ "$(value infer onnx_ms)" = NA ] && echo NA || echo available)"
    echo "onnx_mask_agreement=$(value infer mask_agreement)"
    echo "onnx_ms=$(value infer onnx_ms)"
fi
echo "torch_infer_ms=$(value infer torch_ms)"
echo "gpu_check_s=$(($(date +%s) - START))"
exit $FAILED
