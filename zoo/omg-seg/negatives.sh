#!/usr/bin/env bash
# The card's class-negative probes, each 600 steps of the shipped recipe (batch 4, 96 px, seed 0, one thread):
#   none            the official classifier: no negatives, zero void prototype
#   sphere          64 random unit directions as negatives, zero void
#   opposite        the negated training names as negatives, zero void
#   opposite_void   the negated training names and a learned void (the world default, shipped)
#   void            a learned void alone (no negatives)
#   margin10        the shipped negatives weakened: a negative costs only past cosine 0.1 (and a learned void)
#   margin20        the same past cosine 0.2
# Usage: zoo/omg-seg/negatives.sh OUT_DIR   (then: python zoo/omg-seg/ablation_table.py OUT_DIR)
set -euo pipefail
out=${1:?usage: negatives.sh OUT_DIR}
common=(--variant tiny --image-size 96 --batch-size 4 --lr 1e-3 --steps 600 --warmup-steps 50 --eval-every 0
        --checkpoint-every 600 --val-images 50 --val-clips 10 --val-frames 8 --window 2 --threads 1 --seed 0)
run() { name=$1; shift; OMP_NUM_THREADS=1 python -m segblocks.cli train omg-seg "${common[@]}" --out "$out/$name" "$@" > "$out/$name.log" 2>&1; }
mkdir -p "$out"
run none --set class_negatives=none class_void=zero
run sphere --set class_negatives=sphere class_void=zero
run opposite --set class_negatives=opposite class_void=zero
run opposite_void --set class_negatives=opposite class_void=learned
run void --set class_negatives=none class_void=learned
run margin10 --set class_negatives=opposite class_void=learned class_negative_margin=0.1
run margin20 --set class_negatives=opposite class_void=learned class_negative_margin=0.2
