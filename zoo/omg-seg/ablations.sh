#!/usr/bin/env bash
# The card's two miniature ablations, each 600 steps (batch 4, 96 px, seed 0 by default) on one thread:
#   joint        images + clips + prompts, location queries masked in self-attention (the official rule)
#   joint_open   the same with the self-attention mask off (location queries see each other)
#   images       panoptic pseudo-clips only
#   clips        clips only
# Usage: zoo/omg-seg/ablations.sh OUT_DIR [SEED] [RUN...]   (default seed 0, every run; then:
#        python zoo/omg-seg/ablation_table.py OUT_DIR). The card's second seed: OUT_DIR 1 joint joint_open
set -euo pipefail
out=${1:?usage: ablations.sh OUT_DIR [SEED] [RUN...]}
seed=${2:-0}
only=("${@:3}")
common=(--variant tiny --image-size 96 --batch-size 4 --lr 1e-3 --steps 600 --warmup-steps 50 --eval-every 0
        --checkpoint-every 100000 --val-images 50 --val-clips 10 --val-frames 8 --window 2 --threads 1 --seed "$seed")
run() {
    name=$1; shift
    if [[ ${#only[@]} -gt 0 && ! " ${only[*]} " == *" $name "* ]]; then return; fi
    OMP_NUM_THREADS=1 python -m segblocks.cli train omg-seg "${common[@]}" --out "$out/$name" "$@" > "$out/$name.log" 2>&1
}
mkdir -p "$out"
run joint --mix image=1,clip=1,prompt=1
run joint_open --mix image=1,clip=1,prompt=1 --set location_self_mask=false
run images --mix image=1,clip=0,prompt=0
run clips --mix image=0,clip=1,prompt=0
