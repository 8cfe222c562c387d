"""Gather the runs of a sweep (or of any folder of runs) into two tables.

``runs.parquet``: one row per run (and per expected run that left no directory):

    run_id        run directory relative to the collected folder ("" for missing runs)
    status        ok | failed | incomplete | missing
    error         last line of the error (failed runs)
    overrides     the run's Hydra overrides, space-separated (``.hydra/overrides.yaml``)
    override.KEY  the value of each overridden key, as given on the command line
    scenario, seed, replicate, geography, weeks, start_date
    <outcomes>    every scalar of ``summary.json`` (``config`` left out); nested mappings
                  (``key_place_controller_final``, ``phase_seconds``) as JSON strings

``timeseries.parquet``: the tidy time series of every ``ok`` run, long, with ``run_id``,
``scenario``, ``seed`` and ``replicate`` columns in front of date, step, metric, faction, value.

A run is ``ok`` when its ``summary.json`` exists (written last) and its ``status.json`` (see
:mod:`sim.jobs`) does not say otherwise; ``failed`` when it says ``failed`` or there is an
``error.log`` and no summary; ``incomplete`` otherwise (killed, out of memory, still running).
``missing``: a job of the sweep (expanded from ``multirun.yaml``) with no directory at all.
No run is ever dropped silently: :func:`report` lists every run that is not ``ok``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("sim")

RUNS_FILE = "runs.parquet"
ENSEMBLE_TS_FILE = "timeseries.parquet"
STATUSES = ("ok", "failed", "incomplete", "missing")
ID_COLUMNS = ("run_id", "status", "error", "overrides", "scenario", "seed", "replicate",
              "geography", "weeks", "start_date")
_MARKERS = ("summary.json", "status.json", "error.log")
_SKIP_PARTS = {".hydra", ".submitit", "__pycache__"}


@dataclass
class Collected:
    root: Path
    runs: pd.DataFrame
    timeseries: pd.DataFrame
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "ok"]


# --------------------------------------------------------------------------------------
# finding runs
# --------------------------------------------------------------------------------------
def find_run_dirs(root: Path) -> list[Path]:
    """Every directory under ``root`` (itself included) that looks like one run."""
    root = Path(root)
    found: set[Path] = set()
    for name in _MARKERS:
        for f in root.rglob(name):
            d = f.parent
            if _SKIP_PARTS.intersection(d.relative_to(root).parts):
                continue
            found.add(d)
    for h in root.rglob(".hydra"):
        if (h / "overrides.yaml").exists() and not _SKIP_PARTS.intersection(h.parent.relative_to(root).parts):
            found.add(h.parent)
    return sorted(found)


def _read_overrides(d: Path) -> list[str] | None:
    import yaml

    f = d / ".hydra" / "overrides.yaml"
    if f.exists():
        try:
            return [str(x) for x in (yaml.safe_load(f.read_text(encoding="utf-8")) or [])]
        except Exception:  # noqa: BLE001
            return None
    st = _read_json(d / "status.json")
    if st and "overrides" in st:
        return [str(x) for x in st["overrides"]]
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _hydra_config(d: Path) -> dict[str, Any]:
    """``.hydra/config.yaml`` (unresolved interpolations left as strings)."""
    import yaml

    f = d / ".hydra" / "config.yaml"
    try:
        return yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    except Exception:  # noqa: BLE001
        return {}


def expected_jobs(root: Path) -> dict[Path, list[list[str]]]:
    """For each sweep folder under ``root`` (one with ``multirun.yaml``), the jobs its command
    line expands to (basic sweeper), as override lists."""
    import yaml

    from .compose import expand_sweep

    out: dict[Path, list[list[str]]] = {}
    for f in sorted(Path(root).rglob("multirun.yaml")):
        try:
            mr = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            hyd = mr.get("hydra", {})
            sweeper = str((hyd.get("sweeper") or {}).get("_target_", ""))
            if sweeper and not sweeper.endswith("BasicSweeper"):
                continue  # another sweeper chooses its own jobs: nothing to expect
            out[f.parent] = expand_sweep(list(hyd.get("overrides", {}).get("task", []) or []))
        except Exception as e:  # noqa: BLE001
            log.warning("cannot expand the sweep of %s: %s", f, e)
    return out


# --------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------
def _flat_value(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True)
    return v


def run_record(d: Path, root: Path) -> dict[str, Any]:
    """The row of ``runs.parquet`` for run directory ``d``."""
    from .jobs import read_status

    st = read_status(d) or {}
    summ_path = d / "summary.json"
    summary = _read_json(summ_path) if summ_path.exists() else None
    err_path = d / "error.log"
    if st.get("status") == "failed":
        status = "failed"
    elif summary is not None:
        status = "ok"
    elif err_path.exists():
        status = "failed"
    else:
        status = "incomplete"
    overrides = _read_overrides(d) or []
    rec: dict[str, Any] = {"run_id": d.relative_to(root).as_posix() if d != root else ".",
                           "status": status, "error": None, "overrides": " ".join(overrides)}
    if status == "failed":
        msg = st.get("error") or ""
        if not msg and err_path.exists():
            lines = [x for x in err_path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
            msg = lines[-1] if lines else "error.log is empty"
        rec["error"] = msg or "failed"
    elif status == "incomplete":
        rec["error"] = ("status.json says running (killed or still running)"
                        if st.get("status") == "running" else "no summary.json")
    for o in overrides:
        if "=" in o:
            k, v = o.split("=", 1)
            rec[f"override.{k.lstrip('+~')}"] = v
    conf = (summary or {}).get("config") or _hydra_config(d)
    scen = conf.get("scenario", {}) if isinstance(conf.get("scenario"), dict) else {}
    geo = conf.get("geography", {}) if isinstance(conf.get("geography"), dict) else {}
    rec["scenario"] = (summary or {}).get("scenario", scen.get("name"))
    rec["seed"] = (summary or {}).get("seed", conf.get("seed"))
    rec["replicate"] = (summary or {}).get("replicate", conf.get("replicate"))
    rec["geography"] = geo.get("name")
    rec["weeks"] = scen.get("weeks")
    rec["start_date"] = scen.get("start_date")
    if summary is not None:
        for k, v in summary.items():
            if k in ("config",) or k in rec:
                continue
            rec[k] = _flat_value(v)
    return rec


def _missing_records(root: Path, recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    have: dict[Path, set[frozenset[str]]] = {}
    for r in recs:
        d = (root / r["run_id"]).resolve()
        have.setdefault(d.parent, set()).add(frozenset(r["overrides"].split()))
    out = []
    for sweep, jobs in expected_jobs(root).items():
        got = have.get(sweep.resolve(), set())
        for job in jobs:
            if frozenset(job) not in got:
                rec = {"run_id": "", "status": "missing", "error": f"no run directory in {sweep.relative_to(root).as_posix() or '.'}",
                       "overrides": " ".join(job)}
                for o in job:
                    if "=" in o:
                        k, v = o.split("=", 1)
                        rec[f"override.{k.lstrip('+~')}"] = v
                out.append(rec)
    return out


# --------------------------------------------------------------------------------------
# the tables
# --------------------------------------------------------------------------------------
def collect(root: Path, timeseries: bool = True) -> Collected:
    """Read every run under ``root``; see the module docstring."""
    from .outputs import read_timeseries

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    dirs = find_run_dirs(root)
    recs = [run_record(d, root) for d in dirs]
    recs += _missing_records(root, recs)
    runs = pd.DataFrame.from_records(recs)
    if runs.empty:
        runs = pd.DataFrame(columns=list(ID_COLUMNS))
    for c in ID_COLUMNS:
        if c not in runs:
            runs[c] = None
    front = [c for c in ID_COLUMNS] + sorted(c for c in runs.columns if c.startswith("override."))
    runs = runs[front + [c for c in runs.columns if c not in front]]
    runs["status"] = pd.Categorical(runs["status"], categories=list(STATUSES))
    for c in ("seed", "replicate", "weeks"):
        runs[c] = pd.array(pd.to_numeric(runs[c], errors="coerce"), dtype="Int64")
    runs = runs.sort_values(["status", "scenario", "seed", "replicate", "run_id"],
                            na_position="last", kind="mergesort").reset_index(drop=True)
    runs["status"] = runs["status"].astype(str)

    frames = []
    if timeseries:
        for r in runs[runs["status"] == "ok"].itertuples(index=False):
            path = root / r.run_id / "timeseries.parquet"
            if not path.exists():
                continue
            ts = read_timeseries(path)
            ts.insert(0, "replicate", r.replicate)
            ts.insert(0, "seed", r.seed)
            ts.insert(0, "scenario", r.scenario)
            ts.insert(0, "run_id", r.run_id)
            frames.append(ts)
    if frames:
        ts = pd.concat(frames, ignore_index=True)
        for c in ("run_id", "scenario", "metric", "faction"):
            ts[c] = ts[c].astype("category")
        ts["seed"] = ts["seed"].astype("Int64")
        ts["replicate"] = ts["replicate"].astype("Int64")
    else:
        ts = pd.DataFrame(columns=["run_id", "scenario", "seed", "replicate", "date", "step",
                                   "metric", "faction", "value"])
    problems = runs[runs["status"] != "ok"]
    return Collected(root=root, runs=runs, timeseries=ts, problems=problems)


def write(col: Collected, out: Path | None = None) -> dict[str, Path]:
    """Write ``runs.parquet`` and ``timeseries.parquet`` into ``out`` (default: the root)."""
    from .outputs import atomic_write

    out = Path(out or col.root)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"runs": out / RUNS_FILE, "timeseries": out / ENSEMBLE_TS_FILE}
    runs = col.runs.copy()
    for c in runs.columns:  # mixed object columns (None + str/float) -> consistent types
        if runs[c].dtype == object:
            vals = runs[c].dropna()
            if len(vals) and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in vals):
                runs[c] = pd.to_numeric(runs[c], errors="coerce")
            else:
                runs[c] = runs[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    atomic_write(paths["runs"], lambda tmp: runs.to_parquet(tmp, index=False))
    atomic_write(paths["timeseries"], lambda tmp: col.timeseries.to_parquet(tmp, index=False))
    return paths


def read(root: Path) -> Collected:
    """The collected tables of ``root`` (collecting first if they are missing or stale)."""
    root = Path(root)
    runs_p, ts_p = root / RUNS_FILE, root / ENSEMBLE_TS_FILE
    if runs_p.exists() and ts_p.exists() and not _stale(root, runs_p):
        runs = pd.read_parquet(runs_p)
        ts = pd.read_parquet(ts_p)
        return Collected(root=root, runs=runs, timeseries=ts, problems=runs[runs["status"] != "ok"])
    col = collect(root)
    write(col)
    return col


def _stale(root: Path, runs_p: Path) -> bool:
    t = runs_p.stat().st_mtime
    for name in _MARKERS:
        for f in root.rglob(name):
            if f.stat().st_mtime > t:
                return True
    return False


def report(col: Collected, stream=None) -> str:
    """A loud listing of every run that is not ``ok`` (also printed to ``stream``)."""
    import sys

    counts = col.runs["status"].value_counts()
    head = (f"{len(col.runs)} runs in {col.root}: " +
            ", ".join(f"{s} {int(counts.get(s, 0))}" for s in STATUSES))
    lines = [head]
    if len(col.problems):
        lines.append(f"WARNING: {len(col.problems)} run(s) are NOT ok and are left out of the "
                     "ensemble statistics:")
        for r in col.problems.itertuples(index=False):
            where = r.run_id or r.overrides
            lines.append(f"  {r.status.upper():10s} {where}  {r.error or ''}")
    mixed = mixed_resolutions(col.runs)
    if mixed:
        lines.append(mixed)
    text = "\n".join(lines)
    loud = len(col.problems) or mixed
    print(text, file=stream or (sys.stderr if loud else sys.stdout), flush=True)
    return text


def mixed_resolutions(runs: pd.DataFrame) -> str:
    """A warning if the ``ok`` runs come from more than one grid (``geography``), else ``""``:
    displacement, civilian deaths, battles and the ISIS defeat date depend on the cell size
    (docs/ODD.md 2.1), so runs of different resolutions should not be pooled."""
    if "geography" not in runs or "status" not in runs:
        return ""
    geo = runs.loc[runs["status"].astype(str) == "ok", "geography"].dropna().astype(str)
    counts = geo.value_counts()
    if len(counts) < 2:
        return ""
    return ("WARNING: runs of different resolutions are mixed (" +
            ", ".join(f"{g}: {n}" for g, n in sorted(counts.items())) +
            "); outcomes such as displacement, civilian deaths and battles depend on the grid, "
            "so compare runs of one resolution")
