"""Gather the runs of a sweep (or of any folder of runs) into two tables.

``runs.parquet``: one row per run (and per expected run that left no directory):

    run_id        run directory relative to the collected folder ("" for missing runs)
    status        ok | failed | incomplete | unreadable | missing
    error         last line of the error (failed runs), or why a run is unreadable
    overrides     the run's Hydra overrides, space-separated (``.hydra/overrides.yaml``)
    group         the run's configuration: ``scenario=NAME`` and every override that can change
                  the results (all but ``seed``, ``replicate``, ``output.*`` and ``hydra.*``),
                  sorted; runs with the same ``group`` are replicates of one configuration
    override.KEY  the value of each overridden key, as given on the command line
    scenario, seed, replicate, geography, weeks, start_date
    <outcomes>    every scalar of ``summary.json`` (``config`` left out); nested mappings
                  (``key_place_controller_final``, ``phase_seconds``) as JSON strings

``timeseries.parquet``: the tidy time series of every ``ok`` run, long (one row per run, step,
metric and faction), with ``run_id``, ``group``, ``scenario``, ``seed``, ``replicate`` and the
``override.KEY`` columns in front of date, step, metric, faction, value: a BehaviorSpace-style
experiment table that can be grouped by any swept parameter.

A run is ``ok`` when its ``summary.json`` exists (written last) and its ``status.json`` (see
:mod:`sim.jobs`) does not say otherwise; ``failed`` when it says ``failed`` or there is an
``error.log`` and no summary; ``incomplete`` otherwise (killed, out of memory, still running).
``unreadable``: the run finished but one of its files cannot be read (a truncated
``summary.json``, ``timeseries.parquet`` or ``control.nc``); the reason is in ``error``.
``missing``: a job of the sweep (expanded from ``multirun.yaml``) with no directory at all.
No run is ever dropped silently: :func:`report` lists every run that is not ``ok``.
A folder without any run is an error (:class:`NoRuns`).
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
STATUSES = ("ok", "failed", "incomplete", "unreadable", "missing")
ID_COLUMNS = ("run_id", "status", "error", "overrides", "group", "scenario", "seed", "replicate",
              "geography", "weeks", "start_date")
# overrides that do not define a configuration: replicates of one configuration differ in these
REPLICATE_KEYS = ("seed", "replicate")
NON_CONFIG_PREFIXES = ("hydra.", "hydra/", "output.")
_MARKERS = ("summary.json", "status.json", "error.log")
_SKIP_PARTS = {".hydra", ".submitit", "__pycache__"}


class NoRuns(ValueError):
    """The collected folder holds no run at all."""


@dataclass
class Collected:
    root: Path
    runs: pd.DataFrame
    timeseries: pd.DataFrame
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "ok"]

    @property
    def groups(self) -> list[str]:
        """The distinct configurations of the ok runs, sorted."""
        return sorted(str(g) for g in self.ok["group"].dropna().unique())


# --------------------------------------------------------------------------------------
# configurations (groups)
# --------------------------------------------------------------------------------------
def override_items(overrides: list[str]) -> dict[str, str]:
    """``{key: value}`` of ``key=value`` overrides (``+``/``~`` prefixes dropped)."""
    out: dict[str, str] = {}
    for o in overrides:
        if "=" in o:
            k, v = o.split("=", 1)
            out[k.lstrip("+~")] = v
    return out


def is_config_key(key: str) -> bool:
    """Whether an override key can change a run's results (not a replicate index, an output
    option or a Hydra setting)."""
    return key not in REPLICATE_KEYS and not key.startswith(NON_CONFIG_PREFIXES)


def config_group(overrides: list[str], scenario: str | None) -> str:
    """The configuration a run belongs to: ``scenario=NAME`` then the other result-changing
    overrides, sorted, space-separated."""
    items = {k: v for k, v in override_items(overrides).items() if is_config_key(k)}
    scen = items.pop("scenario", None) or scenario
    head = [f"scenario={scen}"] if scen is not None else []
    return " ".join(head + [f"{k}={v}" for k, v in sorted(items.items())])


def group_labels(groups: list[str]) -> dict[str, str]:
    """Short labels of configurations: only the ``key=value`` items that differ between them
    (the scenario as its bare name).  One configuration is labelled by its scenario."""
    parsed = {g: dict(x.split("=", 1) for x in str(g).split() if "=" in x) for g in groups}
    keys = sorted({k for d in parsed.values() for k in d})
    varying = [k for k in keys if len({d.get(k) for d in parsed.values()}) > 1]
    out = {}
    for g, d in parsed.items():
        parts = [(d.get(k, "(default)") if k == "scenario" else f"{k}={d.get(k, '(default)')}")
                 for k in varying]
        out[g] = " ".join(parts) or d.get("scenario", str(g)) or "all runs"
    return out


def constant_items(groups: list[str]) -> list[str]:
    """The ``key=value`` items shared by every configuration (for titles and headers)."""
    sets = [set(str(g).split()) for g in groups]
    return sorted(set.intersection(*sets)) if sets else []


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
    elif summ_path.exists():
        status = "unreadable"
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
    elif status == "unreadable":
        rec["error"] = "summary.json: not valid JSON (truncated?)"
    for k, v in override_items(overrides).items():
        rec[f"override.{k}"] = v
    conf = (summary or {}).get("config") or _hydra_config(d)
    scen = conf.get("scenario", {}) if isinstance(conf.get("scenario"), dict) else {}
    geo = conf.get("geography", {}) if isinstance(conf.get("geography"), dict) else {}
    rec["scenario"] = (summary or {}).get("scenario", scen.get("name"))
    rec["seed"] = (summary or {}).get("seed", conf.get("seed"))
    rec["replicate"] = (summary or {}).get("replicate", conf.get("replicate"))
    rec["geography"] = geo.get("name")
    rec["weeks"] = scen.get("weeks")
    rec["start_date"] = scen.get("start_date")
    rec["group"] = config_group(overrides, rec["scenario"])
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
                       "overrides": " ".join(job), "group": config_group(job, None)}
                for k, v in override_items(job).items():
                    rec[f"override.{k}"] = v
                out.append(rec)
    return out


# --------------------------------------------------------------------------------------
# the tables
# --------------------------------------------------------------------------------------
def _check_control(path: Path) -> str | None:
    """Why ``control.nc`` cannot be read (None if it opens).  HDF5 checks the stored end of
    file against the file's size on open, so a truncated file fails here, cheaply."""
    try:
        import netCDF4

        with netCDF4.Dataset(path, "r") as ds:
            if "controller" not in ds.variables:
                return "control.nc: no 'controller' variable"
    except Exception as e:  # noqa: BLE001 - any failure makes the file unusable
        return f"control.nc: {_short(e)} (truncated, or not a NetCDF file)"
    return None


def _short(e: BaseException) -> str:
    """The first line of an error, without the file's path (the run is named beside it)."""
    import re

    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    msg = re.sub(r":?\s*'[^']*[/\\][^']*'", "", lines[0]) if lines else ""
    return f"{type(e).__name__}: {msg[:200]}".rstrip(": ")


def _read_run_timeseries(path: Path, full: bool) -> tuple[pd.DataFrame | None, str | None]:
    """The run's time series (``full``) or only a check of its footer; or the reason it is
    unreadable."""
    from .outputs import read_timeseries

    try:
        if full:
            return read_timeseries(path), None
        import pyarrow.parquet as pq

        pq.read_metadata(path)
        return None, None
    except Exception as e:  # noqa: BLE001 - a truncated/corrupt file: the run is skipped
        import pyarrow.parquet as pq

        why = _short(e)
        try:  # the footer's complaint says more than "could not open"
            pq.read_metadata(path)
        except Exception as e2:  # noqa: BLE001
            why = _short(e2)
        return None, f"timeseries.parquet: {why}"


def collect(root: Path, timeseries: bool = True) -> Collected:
    """Read every run under ``root``; see the module docstring.  Raises
    :class:`FileNotFoundError` if ``root`` is not a folder and :class:`NoRuns` if it holds no
    run.  A run whose files cannot be read is marked ``unreadable`` (with the reason) and left
    out of the time series; the collection goes on."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    dirs = find_run_dirs(root)
    recs = [run_record(d, root) for d in dirs]
    recs += _missing_records(root, recs)
    if not recs:
        raise NoRuns(f"{root}: no runs found (no summary.json, status.json, error.log or "
                     ".hydra/overrides.yaml below it)")
    series: dict[str, pd.DataFrame] = {}
    for rec in recs:
        if rec["status"] != "ok":
            continue
        d = root / rec["run_id"]
        why = None
        if (d / "timeseries.parquet").exists():
            ts_run, why = _read_run_timeseries(d / "timeseries.parquet", timeseries)
            if ts_run is not None:
                series[rec["run_id"]] = ts_run
        if why is None and (d / "control.nc").exists():
            why = _check_control(d / "control.nc")
        if why is not None:
            rec["status"], rec["error"] = "unreadable", why
            series.pop(rec["run_id"], None)
    runs = pd.DataFrame.from_records(recs)
    for c in ID_COLUMNS:
        if c not in runs:
            runs[c] = None
    front = [c for c in ID_COLUMNS] + sorted(c for c in runs.columns if c.startswith("override."))
    runs = runs[front + [c for c in runs.columns if c not in front]]
    runs["status"] = pd.Categorical(runs["status"], categories=list(STATUSES))
    for c in ("seed", "replicate", "weeks"):
        runs[c] = pd.array(pd.to_numeric(runs[c], errors="coerce"), dtype="Int64")
    runs = runs.sort_values(["status", "group", "seed", "replicate", "run_id"],
                            na_position="last", kind="mergesort").reset_index(drop=True)
    runs["status"] = runs["status"].astype(str)

    ov_cols = [c for c in runs.columns if c.startswith("override.")]
    frames = []
    if timeseries:
        for rec in runs[runs["status"] == "ok"].to_dict("records"):
            ts = series.get(rec["run_id"])
            if ts is None:
                continue
            front_vals = {c: rec[c] for c in ("run_id", "group", "scenario", "seed", "replicate",
                                              *ov_cols)}
            for k, (c, v) in enumerate(front_vals.items()):
                ts.insert(k, c, v)
            frames.append(ts)
    if frames:
        ts = pd.concat(frames, ignore_index=True)
        for c in ("run_id", "group", "scenario", "metric", "faction", *ov_cols):
            ts[c] = ts[c].astype("string").astype("category")
        ts["seed"] = ts["seed"].astype("Int64")
        ts["replicate"] = ts["replicate"].astype("Int64")
    else:
        ts = pd.DataFrame(columns=["run_id", "group", "scenario", "seed", "replicate", *ov_cols,
                                   "date", "step", "metric", "faction", "value"])
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
        try:
            runs = pd.read_parquet(runs_p)
            ts = pd.read_parquet(ts_p)
        except Exception as e:  # noqa: BLE001 - a damaged collection is simply redone
            log.warning("cannot read the collected tables of %s (%s): collecting again", root, e)
        else:
            if "group" in runs.columns and "group" in ts.columns:  # else: an older layout
                return Collected(root=root, runs=runs, timeseries=ts,
                                 problems=runs[runs["status"] != "ok"])
    col = collect(root)
    write(col)
    return col


def _stale(root: Path, runs_p: Path) -> bool:
    t = runs_p.stat().st_mtime
    for name in (*_MARKERS, ENSEMBLE_TS_FILE, "control.nc"):
        for f in root.rglob(name):
            if f.parent != root and f.stat().st_mtime > t:
                return True
    return False


def report(col: Collected, stream=None) -> str:
    """A loud listing of every run that is not ``ok`` (also printed to ``stream``)."""
    import sys

    counts = col.runs["status"].value_counts()
    head = (f"{len(col.runs)} runs in {col.root}: " +
            ", ".join(f"{s} {int(counts.get(s, 0))}" for s in STATUSES))
    lines = [head]
    groups = col.groups
    if groups:
        labels = group_labels(groups)
        n_ok = col.ok.groupby("group").size()
        shared = constant_items(groups)
        lines.append(f"{len(groups)} configuration(s)" + (f" (all with {' '.join(shared)})"
                                                         if shared and len(groups) > 1 else "") + ":")
        shown = groups if len(groups) <= 12 else groups[:8]
        for g in shown:
            lines.append(f"  {labels[g]}: {int(n_ok.get(g, 0))} ok run(s)")
        if len(shown) < len(groups):
            lines.append(f"  ... and {len(groups) - len(shown)} more (the group column of "
                         f"{RUNS_FILE})")
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
