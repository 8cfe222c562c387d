"""``sim sensitivity [DESIGN]``: global sensitivity analysis with SALib (see :mod:`sim.sensitivity`).

    sim sensitivity                                   # configs/experiment/sensitivity_lhs.yaml
    sim sensitivity sensitivity_morris --jobs 2       # a design in configs/experiment/ by name
    sim sensitivity my_design.yaml --samples 64 --weeks 104 --out outputs/sensitivity/full
    sim sensitivity --samples 4 --weeks 3 -- geography=res_010   # extra overrides after --

Writes ``runs/`` (one run per sample and replicate), ``samples.csv``, ``outcomes.csv``,
``indices.csv`` (every index with its 95% CI), ``sensitivity.png`` (tornado/bar chart with CIs;
``scatter.png`` for latin) and ``README.txt`` (how to read them, and this study's warnings) into
``--out`` (default ``outputs/sensitivity/<design>/<time>_<token>``).  A design too small for its
method is flagged before anything runs (RBD-FAST is then not computed); ``--strict`` refuses to
run it.  Rerunning into the same ``--out`` skips the finished runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import split_extra


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sim sensitivity",
                                description="Latin-hypercube / Morris / Sobol' sensitivity analysis.",
                                epilog="Anything after -- is added to the design's overrides.")
    p.add_argument("design", nargs="?", default="sensitivity_lhs",
                   help="design YAML, or the name of one in configs/experiment/ "
                        "(default sensitivity_lhs)")
    p.add_argument("--method", choices=("latin", "morris", "sobol"), default=None)
    p.add_argument("--samples", type=int, default=None, help="override the design's samples")
    p.add_argument("--replicates", type=int, default=None)
    p.add_argument("--weeks", type=int, default=None, help="scenario.weeks of every run")
    p.add_argument("--jobs", type=int, default=-1, help="parallel runs (default: all cores)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--dpi", type=int, default=110)
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit code 2) a design too small for its method")
    return p


def _design_path(arg: str) -> Path:
    from ..compose import config_dir

    p = Path(arg)
    if p.exists():
        return p
    cand = config_dir() / "experiment" / (arg if arg.endswith(".yaml") else f"{arg}.yaml")
    if cand.exists():
        return cand
    raise FileNotFoundError(f"{arg}: no such design file (nor configs/experiment/{arg}.yaml)")


def main(argv: list[str]) -> int:
    from .. import sensitivity as S

    argv, extra = split_extra(argv)
    args = _parser().parse_args(argv)
    for flag, v, low in (("--samples", args.samples, 1), ("--replicates", args.replicates, 1),
                         ("--weeks", args.weeks, 1)):
        if v is not None and v < low:
            print(f"sim sensitivity: {flag} {v}: need at least {low}", file=sys.stderr)
            return 2
    if args.jobs == 0 or args.jobs < -1:
        print(f"sim sensitivity: --jobs {args.jobs}: a positive number, or -1 for all cores",
              file=sys.stderr)
        return 2
    try:
        path = _design_path(args.design)
        design = S.load_design(path)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"sim sensitivity: {e}", file=sys.stderr)
        return 2
    if args.method:
        design["method"] = args.method
    if args.samples:
        design["samples"] = args.samples
    if args.replicates:
        design["replicates"] = args.replicates
    if args.weeks:
        extra.append(f"scenario.weeks={args.weeks}")
    from ..jobs import merge_overrides

    design["overrides"] = merge_overrides(design["overrides"], extra)
    small = S.design_warnings(design)
    if small and args.strict:
        for w in small:
            print(f"sim sensitivity: {w}", file=sys.stderr)
        print("sim sensitivity: --strict: refused; raise --samples", file=sys.stderr)
        return 2
    out = args.out
    if out is None:
        from ..compose import new_uid

        out = Path("outputs") / "sensitivity" / path.stem / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{new_uid()}"
    res = S.run_study(design, out, n_jobs=args.jobs, dpi=args.dpi)
    idx = res["indices"]
    if len(idx):
        main_idx = S.MAIN_INDEX[design["method"]]
        sub = idx[idx["index"] == main_idx]
        cell = sub.apply(lambda r: f"{r['value']:.3g} [{r['low']:.2g}, {r['high']:.2g}]", axis=1)
        tab = sub.assign(cell=cell).pivot(index="parameter", columns="outcome", values="cell")
        print(f"\n{S.INDEX_LABEL[main_idx]} [95% CI]:")
        import pandas as pd

        with pd.option_context("display.width", 220, "display.max_colwidth", 30):
            print(tab.to_string())
    print(f"\nwrote {out}: " + ", ".join(str(p.name) for p in res["paths"].values()) +
          f" ({res['n_runs']} runs in {res['wall_seconds']:.0f} s)")
    return 1 if len(res["problems"]) or not len(idx) else 0
