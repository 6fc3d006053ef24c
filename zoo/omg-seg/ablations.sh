#!/usr/bin/env bash
# The card's two miniature ablations, each run at the same 600 steps (batch 4, 96 px, seed 0) on one thread:
#   joint        images + clips + prompts, location queries masked in self-attention (the official rule)
#   joint_open   the same with the self-attention mask off (location queries see each other)
#   images       panoptic pseudo-clips only
#   clips        clips only
# Usage: zoo/omg-seg/ablations.sh OUT_DIR   (then: python zoo/omg-seg/ablation_table.py OUT_DIR)
set -euo pipefail
out=${1:?usage: ablations.sh OUT_DIR}
common=(--variant tiny --image-size 96 --batch-size 4 --lr 1e-3 --steps 600 --warmup-steps 50 --eval-every 0
        --checkpoint-every 100000 --val-images 50 --val-clips 10 --val-frames 8 --window 2 --threads 1 --seed 0)
run() { name=$1; shift; OMP_NUM_THREADS=1 python -m segblocks.cli train omg-seg "${common[@]}" --out "$out/$name" "$@" > "$out/$name.log" 2>&1; }
mkdir -p "$out"
run joint --mix image=1,clip=1,prompt=1
run joint_open --mix image=1,clip=1,prompt=1 --set location_self_mask=false
run images --mix image=1,clip=0,prompt=0
run clips --mix image=0,clip=1,prompt=0
