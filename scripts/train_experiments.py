"""Train the runs of named experiments of a profile, interleaved by seed (seed 0 of every run first), so that a
partial session leaves complete seeds. Resumable: finished runs are reused, interrupted ones resume. Several
processes can share one queue: a run another process is training is skipped and revisited at the end.

    python scripts/train_experiments.py cpu lesion_target [more experiments] [--budget-minutes N]
"""

from __future__ import annotations

import argparse
import time

from lanet_core.errors import BudgetExhausted
from lanet_core.runs import RunBusy
from lanet_core.study.experiments import EXPERIMENTS
from lanet_core.study.profiles import load_profile
from lanet_core.study.records import ensure_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("experiments", nargs="+", choices=sorted(EXPERIMENTS))
    ap.add_argument("--budget-minutes", type=float, default=None)
    ap.add_argument("--match", default=None, help="only runs whose method contains this text")
    ap.add_argument("--exclude", default=None, help="skip runs whose method contains this text")
    ap.add_argument("--name", default=None, help="only runs whose config name contains this text")
    ap.add_argument("--priority", default="", help="comma-separated method names trained first (e.g. R18,R18+LA-Net)")
    args = ap.parse_args()
    prof = load_profile(args.profile)
    specs = [s for e in args.experiments for s in EXPERIMENTS[e](prof)]
    if args.match:
        specs = [s for s in specs if args.match in s.method]
    if args.exclude:
        specs = [s for s in specs if args.exclude not in s.method]
    if args.name:
        specs = [s for s in specs if args.name in s.config["name"]]
    first = [m for m in args.priority.split(",") if m]
    specs.sort(key=lambda s: (s.method not in first, s.seed))  # stable: experiment order within a seed
    deadline = time.time() + 60 * args.budget_minutes if args.budget_minutes else None
    t_all = time.time()
    queue, busy = list(specs), []
    for i, spec in enumerate(queue, 1):
        t0 = time.time()
        try:
            r = ensure_run(spec, prof, train=True, deadline=deadline, wait=any(spec is b for b in busy))
        except RunBusy as exc:  # another process trains it: go on, come back to it at the end
            print(f"[{i}] skipped for now: {exc}", flush=True)
            busy.append(spec)
            queue.append(spec)
            continue
        except BudgetExhausted as exc:
            print(f"stopped: {exc}", flush=True)
            return
        print(f"[{i}/{len(queue)}] {spec.label}: {r.summary()} in {(time.time() - t0) / 60:.1f} min "
              f"(total {(time.time() - t_all) / 60:.0f} min)", flush=True)


if __name__ == "__main__":
    main()
