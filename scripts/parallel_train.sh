#!/usr/bin/env bash
# Train a profile's unfinished runs in N parallel processes: disjoint shards of `lanet study --train-only`.
#
#   scripts/parallel_train.sh N LOGDIR [lanet study arguments...]
#   e.g. scripts/parallel_train.sh 8 logs --profile cpu --only 06_label_ratio --budget-minutes 30
#
# Each process trains every N-th run still unfinished when it starts (`--shard K/N`) into the same run
# folder; records are written atomically, so the shards never touch one another's runs. Render afterwards
# with `lanet study --profile NAME --render-only`. Set OMP_NUM_THREADS so that N x threads <= cores.
# Exit status: 0 if every shard exited 0.
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 N LOGDIR [lanet study arguments...]" >&2
  exit 2
fi
n=$1; logs=$2; shift 2
mkdir -p "$logs"
py=${PYTHON:-python3}
pids=()
for k in $(seq 0 $((n - 1))); do
  "$py" -m lanet_core.cli study --train-only --shard "$k/$n" "$@" > "$logs/shard$k.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
