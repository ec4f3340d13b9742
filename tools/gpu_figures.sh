#!/usr/bin/env bash
# The accelerator figures of bench/README.md in one run, sized for one 10-minute command on one
# GPU (6 to 9 minutes on an H200, by estimate; each part is cut off by its own time limit, so one that hangs
# costs only its share). Every part's output goes to $OUT/figures.log (default out/gpu-figures),
# the loss curves of mixed precision to $OUT/mixed_precision_*.png.
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
#       lease/wheels/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 && bash tools/gpu_figures.sh
#
# (lease/wheels as for tools/train_lease.py: ml-collections and constriction; the machine's own
# jax, flax, optax and orbax are used). PEER_PYTHON=/path/to/python with torch and compressai adds
# CompressAI's side to the training and codec timings; without it only jaxcodec's side runs.
# QUICK=1 runs every part at toy sizes (the CPU check that the script works end to end).
# PEAKS="BF16,FP32" sets the device's peak TFLOP/s for the share of peak (default: an H200's dense
# 989 and 67).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu-figures}"
mkdir -p "$OUT"
LOG="$OUT/figures.log"
PY="${PYTHON:-python3}"
PEAKS="${PEAKS:-989,67}"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from this tree, installed or not
PEER=()
if [ -n "${PEER_PYTHON:-}" ]; then PEER=(--peer-python "$PEER_PYTHON" --peer-device cuda); fi

if [ "${QUICK:-0}" = 1 ]; then
  MP=(--steps 4 --batch 2 --patch 64 --features 16 --latent 24); LIMIT=300
  DD=(--steps 4 --batch 2 --crop 64 --features 16 --latent 24); TS=(--steps 2 --rounds 1 --warmup 1 --patch 64)
  CS=(--repeats 1 --rounds 1 --height 64 --width 96); INV=(--batch 8 --loop-images 2 --steps 5)
  BATCHES=(2)
else
  MP=(--steps 150 --batch 16 --patch 256); LIMIT=150
  DD=(--steps 120 --batch 16 --crop 256 --features 128 --latent 192); TS=(--steps 50 --rounds 2 --patch 256)
  CS=(--repeats 5 --rounds 2); INV=()
  BATCHES=(16 32)
fi

part() {  # part SECONDS TITLE COMMAND...: one figure, its output appended to the log
  local limit=$1 title=$2
  shift 2
  echo "=== $title ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$LOG"
  timeout "$limit" "$@" 2>&1 | grep -v -e "^WARNING" -e "UserWarning" | tee -a "$LOG"
  echo "=== exit ${PIPESTATUS[0]}" | tee -a "$LOG"
}

part 30 "device" "$PY" -c "import jax; print(jax.__version__, jax.devices())"
command -v nvidia-smi >/dev/null && nvidia-smi -L | tee -a "$LOG"
for model in factorized mbt2018_mean; do
  part "$LIMIT" "mixed precision, $model" "$PY" bench/mixed_precision.py --model "$model" "${MP[@]}" \
    --peak-tflops "$PEAKS" --plot "$OUT/mixed_precision_$model.png"
done
part "$LIMIT" "time outside the step, device-resident vs host pipeline" "$PY" bench/device_data.py "${DD[@]}"
for model in factorized mbt2018-mean; do
  for batch in "${BATCHES[@]}"; do
    part "$LIMIT" "train step, $model, batch $batch" "$PY" bench/train_speed.py --model "$model" "${TS[@]}" \
      --batch "$batch" "${PEER[@]}"
  done
done
for model in factorized mbt2018-mean; do
  part 120 "encode + decode of a photo, $model" "$PY" bench/codec_speed.py --model "$model" --split "${CS[@]}" "${PEER[@]}"
done
part 120 "GAN inversion, batched vs looped" "$PY" bench/inversion_speed.py "${INV[@]}"
echo "=== done $(date -u +%H:%M:%S)" | tee -a "$LOG"
