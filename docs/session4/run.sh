#!/usr/bin/env bash
# Session-4 checks on cs 5k: the new default recipe and speed levers against the old ones.
set -u
cd "$(dirname "$0")/../.."
export OPTICAL_CACHE_DIR=${OPTICAL_CACHE_DIR:-$HOME/.cache/optical-explorer}
O=${OUT:-$HOME/optical-session4}; mkdir -p $O/runs $O/eval
run() {  # name, then distill flags
  name=$1; shift
  if [ -f $O/runs/$name/model/config.json ] || [ -f $O/runs/$name/model/modules.json ]; then echo "reuse $name"; else
    rm -rf $O/runs/$name
    s=$(date +%s.%N)
    .venv/bin/optical distill --lang cs --pairs 5000 --out $O/runs/$name -q "$@" > $O/eval/$name.distill.txt 2>&1
    e=$(date +%s.%N)
    echo "$name distill wall $(echo "$e - $s" | bc) s load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $O/eval/walltimes.txt
  fi
  for de in teacher student; do
    [ -f $O/eval/$name.$de.json ] || .venv/bin/optical evaluate --model $O/runs/$name --lang cs --cer 0 --doc-encoder $de --json -q > $O/eval/$name.$de.json 2>$O/eval/$name.$de.err
  done
  echo "$name done"
}
run ot-default                                             # new recipe, bf16 (auto), cache, grouping
run ot-fp32 --precision fp32                               # new recipe, float32, cache, grouping
run ot-nolevers --precision fp32 --no-teacher-cache --no-group-by-length   # new recipe, the old code path
run ot-oldrecipe --precision fp32 --no-teacher-cache --no-group-by-length --lr-schedule linear --warmup-ratio 0.1 --max-grad-norm 1.0 --weight-decay 0   # yesterday's default run
run mse-default --loss mse
run mse-oldrecipe --loss mse --precision fp32 --no-teacher-cache --no-group-by-length --lr-schedule linear --warmup-ratio 0.1 --max-grad-norm 1.0 --weight-decay 0
echo ALL DONE
