#!/usr/bin/env bash
# Train a profile's unfinished runs in N parallel worker processes on this machine: a thin wrapper around
# `lanet study --executor local --jobs N --train-only` (submitit's local executor; one GPU per worker where
# there are several; workers share the queue through the run claims). Logs: <output>/logs/submitit/.
#
#   scripts/parallel_train.sh N [lanet study arguments...]
#   e.g. scripts/parallel_train.sh 8 --profile cpu --only 06_label_ratio --budget-minutes 30
#
# Render afterwards with `lanet study --profile NAME --render-only`. Set OMP_NUM_THREADS so that
# N x threads <= cores. Exit status: 0 if every run finished.
set -eu
if [ $# -lt 1 ]; then
  echo "usage: $0 N [lanet study arguments...]" >&2
  exit 2
fi
n=$1; shift
exec "${PYTHON:-python3}" -m lanet_core.cli study --executor local --jobs "$n" --train-only "$@"
