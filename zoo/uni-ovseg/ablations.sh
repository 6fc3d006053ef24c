#!/usr/bin/env bash
# Table 4 in miniature: stage 2 alone on the stage-1 weights of the shipped run (RUN, default
# runs/uni_ovseg), with the raw (noisy) and the refined (clean) captions, matching at one input size;
# the full system (clean captions + multi-scale ensemble) and the baseline (frozen CLIP, no
# alignment) come from RUN itself. Every stage 2 runs the same 200 steps as RUN's (steps, not minutes:
# a time budget gave the single-size runs half the steps when other jobs shared the cores). Then the
# input-size table, with and without the adapter.
set -euo pipefail
RUN=${1:-runs/uni_ovseg}
OUT=${2:-runs/uni_ovseg_ablations}
STAGE1=$(ls -d "$RUN"/stage1/checkpoints/*/ | tail -n 1)model.safetensors
COMMON=(--image-size 128 --align-steps 200 --align-batch-size 8 --val-images 50
        --threads 1 --log-every 20 --checkpoint-every 0 --train-images 20000 --text-images 20000
        --skip-stage1 --init "$STAGE1")
python -m segblocks.cli train uni-ovseg "${COMMON[@]}" --caption noisy --no-ensemble --out "$OUT/noisy_single"
python -m segblocks.cli train uni-ovseg "${COMMON[@]}" --caption clean --no-ensemble --out "$OUT/clean_single"
python zoo/uni-ovseg/input_sizes.py --val-images 50 \
    --weights "$(ls -d "$RUN"/stage2/checkpoints/*/ | tail -n 1)model.safetensors" > "$OUT/input_sizes.json"
