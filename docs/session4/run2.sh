#!/usr/bin/env bash
# Session-4, part 2: noisy queries for the 5k defaults, and one 29k-pair epoch of OT-KD on cs.
set -u
cd "$(dirname "$0")/../.."
export OPTICAL_CACHE_DIR=${OPTICAL_CACHE_DIR:-$HOME/.cache/optical-explorer}
O=${OUT:-$HOME/optical-session4}; mkdir -p $O/runs $O/eval
for name in ot-default mse-default; do
  for cer in 0.1 0.2; do
    f=$O/eval/$name.teacher.random_char.$cer.json
    [ -f $f ] || .venv/bin/optical evaluate --model $O/runs/$name --lang cs --noise random_char --cer $cer --json -q > $f 2>$f.err
  done
done
name=ot-29k
if [ ! -f $O/runs/$name/model/modules.json ]; then
  rm -rf $O/runs/$name
  s=$(date +%s.%N)
  .venv/bin/optical distill --lang cs --pairs 29000 --out $O/runs/$name -q > $O/eval/$name.distill.txt 2>&1
  e=$(date +%s.%N)
  echo "$name distill wall $(echo "$e - $s" | bc) s load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $O/eval/walltimes.txt
fi
for cer in 0 0.1 0.2; do
  f=$O/eval/$name.teacher.random_char.$cer.json
  [ -f $f ] || .venv/bin/optical evaluate --model $O/runs/$name --lang cs --noise random_char --cer $cer --json -q > $f 2>$f.err
done
for cer in 0 0.2; do
  f=$O/eval/$name.teacher.maxsim.random_char.$cer.json
  [ -f $f ] || .venv/bin/optical evaluate --model $O/runs/$name --lang cs --noise random_char --cer $cer --scorer maxsim --json -q > $f 2>$f.err
done
echo ALL DONE 2
