"""``sim validate``: run the baseline ensemble and score it against dated checkpoints.

    sim validate [--seeds 8] [--checkpoints FILE.csv] [--window-weeks 4] [--jobs 2]
                 [--out DIR] [--min-score X] [overrides ...]

Prints the scorecard, writes ``scorecard.csv`` and ``scorecard.png`` into ``--out`` (default
``outputs/validate/<date_time>``) and exits 1 when ``--min-score`` is given and the overall
score is below it.  Extra arguments are Hydra overrides of the baseline (``geography=res_010``).

The default checkpoints are ``checkpoints_public.csv`` and the control changes of
``events_2017-2019.csv``.  ``--checkpoints FILE`` replaces them; a path that is not a readable
CSV (missing, a directory, binary, over ``MAX_CHECKPOINT_BYTES`` or ``MAX_CHECKPOINT_ROWS``)
stops with one line and exit code 2, before any run starts.  Rows that cannot be evaluated are
listed as ``not evaluable`` with the reason and left out of the score.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path


def _one(cfg: dict, replicate: int):
    from ..runner import run_scenario

    c = dict(cfg)
    c["replicate"] = replicate
    c["output"] = dict(c["output"], plots=False, gif=False)
    return run_scenario(c)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="sim validate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8, help="ensemble size (replicates 0..N-1)")
    ap.add_argument("--checkpoints", default=None,
                    help="checkpoint CSV (default: the public checkpoints and the control changes of "
                         "events_2017-2019.csv)")
    ap.add_argument("--window-weeks", type=float, default=4,
                    help="date error with full marks, and how long after the date a checkpoint must "
                         "still be held (weeks)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--out", default=None)
    ap.add_argument("--min-score", type=float, default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    from ..compose import compose
    from ..config import ConfigError
    from ..validate import (default_checkpoints, format_scorecard, median_date_error, overall_score,
                            plot_scorecard, read_checkpoints, scorecard)

    try:
        cps = read_checkpoints(args.checkpoints) if args.checkpoints else default_checkpoints()
        cfg = compose(["scenario=baseline_2017", *args.overrides])
        from ..runner import as_config

        as_config(cfg)
    except (ConfigError, ValueError, OSError) as e:
        print(f"sim validate: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if args.jobs > 1 and args.seeds > 1:
        from joblib import Parallel, delayed

        runs = Parallel(n_jobs=args.jobs)(delayed(_one)(cfg, k) for k in range(args.seeds))
    else:
        runs = [_one(cfg, k) for k in range(args.seeds)]
    df = scorecard(runs, cps, args.window_weeks)
    out = Path(args.out or Path("outputs") / "validate" / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "scorecard.csv", index=False)
    plot_scorecard(df, out / "scorecard.png")
    print(format_scorecard(df))
    total = overall_score(df)
    med = median_date_error(df)
    n = df[(df.kind == "overall") & (df.name == "all")]["reason"].iloc[0]
    print(f"\noverall score {total:.3f} ({n}), median date error {med:.1f} weeks, "
          f"over {args.seeds} runs in {time.perf_counter() - t0:.1f} s -> {out}")
    if args.min_score is not None and not total >= args.min_score:  # NaN fails too
        print(f"sim validate: overall score {total:.3f} is below --min-score {args.min_score}", file=sys.stderr)
        return 1
    return 0
