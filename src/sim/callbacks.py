"""Hydra callbacks of ``sim run -m``: progress (runs done / total, ETA) and a loud final tally.

Registered in ``configs/config.yaml`` under ``hydra.callbacks``.  Works with every launcher
whose jobs share the sweep directory's file system (basic, joblib, submitit, Ray on one
machine or a cluster with a shared disk): each job appends one line to
``<sweep dir>/.sim_progress.jsonl`` when it ends and logs the progress of the whole sweep::

    [sweep] 7/20 runs done (ok 6, failed 1, skipped 0) | elapsed 0:00:12 | ETA 0:00:22

At the end the launching process lists the failed and incomplete runs and sets
:data:`LAST_SWEEP` (``sim run -m`` then exits with code 3 if any run failed).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from .compose import expand_sweep

log = logging.getLogger("sim.sweep")

SWEEP_META = ".sim_sweep.json"
PROGRESS_FILE = ".sim_progress.jsonl"

#: tally of the last sweep launched in this process: total, ok, skipped, failed, incomplete
LAST_SWEEP: dict[str, Any] = {}


def _fmt(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "?"
    return str(_dt.timedelta(seconds=round(max(seconds, 0))))


def _is_multirun(config) -> bool:
    try:
        from hydra.types import RunMode

        return config.hydra.mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001
        return False


def read_progress(sweep_dir: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = (Path(sweep_dir) / PROGRESS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written by another job
            continue
    return out


def _read_meta(sweep_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(sweep_dir) / SWEEP_META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


class SweepProgress(Callback):
    """Progress of a sweep (runs done / total, ETA) and the final list of failed runs."""

    def __init__(self, every: int = 1) -> None:
        self.every = max(1, int(every))

    # ---------------------------------------------------------------- launching process
    def on_multirun_start(self, config, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            total: int | None = len(expand_sweep(list(config.hydra.overrides.task)))
        except Exception:  # noqa: BLE001 - another sweeper: total unknown
            total = None
        sweep_dir.mkdir(parents=True, exist_ok=True)
        meta = {"total": total, "started": time.time(), "pid": os.getpid()}
        (sweep_dir / SWEEP_META).write_text(json.dumps(meta) + "\n", encoding="utf-8")
        (sweep_dir / PROGRESS_FILE).write_text("", encoding="utf-8")  # a new attempt
        log.info("[sweep] %s runs -> %s", total if total is not None else "?", sweep_dir)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        meta = _read_meta(sweep_dir)
        tally = sweep_tally(sweep_dir, meta.get("total"))
        tally["seconds"] = time.time() - meta.get("started", time.time())
        LAST_SWEEP.clear()
        LAST_SWEEP.update(tally)
        msg = (f"[sweep] finished in {_fmt(tally['seconds'])}: {tally['done']}/"
               f"{tally['total'] if tally['total'] is not None else '?'} runs "
               f"(ok {len(tally['ok'])}, skipped {len(tally['skipped'])}, "
               f"failed {len(tally['failed'])}, incomplete {len(tally['incomplete'])}) -> {sweep_dir}")
        log.info(msg)
        bad = [("FAILED", d) for d in tally["failed"]] + [("INCOMPLETE", d) for d in tally["incomplete"]]
        if tally["missing"]:
            bad.append(("MISSING", f"{tally['missing']} run(s) never started"))
        if bad:
            lines = [(f"[sweep] {len(tally['failed'])} run(s) FAILED, {len(tally['incomplete'])} "
                      "incomplete (the other runs completed):")]
            for kind, d in bad:
                err = _first_error(Path(d))
                lines.append(f"  {kind:10s} {d}" + (f"  ({err})" if err else ""))
            lines.append("  see error.log in each directory; fix and rerun the same command with "
                         f"hydra.sweep.dir={sweep_dir} to redo only these runs")
            print("\n".join(lines), file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- job (any process)
    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        if not _is_multirun(config):
            return
        try:
            from hydra.core.utils import JobStatus

            status = "failed"
            if job_return.status == JobStatus.COMPLETED:
                rv = job_return.return_value
                status = rv.get("status", "ok") if isinstance(rv, dict) else "ok"
            record_progress(Path(str(config.hydra.sweep.dir)), int(config.hydra.job.num), status,
                            str(config.hydra.runtime.output_dir), every=self.every)
        except Exception as e:  # noqa: BLE001 - progress must never break a run
            log.debug("progress callback failed: %s", e)


def record_progress(sweep_dir: Path, num: int, status: str, run_dir: str | None,
                    every: int = 1) -> None:
    """Append one finished run to the sweep's progress file and log the sweep's progress."""
    rec = {"num": num, "status": status, "t": time.time(), "dir": run_dir}
    with open(Path(sweep_dir) / PROGRESS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")  # one short append: atomic on local disks
    prog = read_progress(sweep_dir)
    meta = _read_meta(sweep_dir)
    done = len({p["num"] for p in prog})
    total = meta.get("total")
    if done % max(1, every) and done != total:
        return
    counts = {k: sum(p["status"] == k for p in prog) for k in ("ok", "failed", "skipped")}
    elapsed = time.time() - meta.get("started", time.time())
    ran = max(done - counts["skipped"], 1)  # ETA from the runs actually run
    eta = elapsed / ran * (total - done) if total else None
    log.info("[sweep] %d/%s runs done (ok %d, failed %d, skipped %d) | elapsed %s | ETA %s",
             done, total if total is not None else "?", counts["ok"], counts["failed"],
             counts["skipped"], _fmt(elapsed), _fmt(eta) if total else "?")


def _first_error(d: Path) -> str:
    try:
        st = json.loads((d / "status.json").read_text(encoding="utf-8"))
        return str(st.get("error", ""))[:160]
    except (OSError, json.JSONDecodeError):
        return ""


def sweep_tally(sweep_dir: Path, total: int | None = None) -> dict[str, Any]:
    """Status of the runs of the last attempt of the sweep in ``sweep_dir``.

    The runs that reported to the progress file are classed by what they reported (a
    ``status.json`` saying ``failed`` wins); run directories that did not report and are not
    finished (``status.json`` ``running`` or no outputs) are *incomplete*; ``missing`` counts
    jobs of ``total`` that left no trace at all.  Without a progress file (launcher on another
    file system) every run directory is classed from its own files."""
    from .jobs import read_status

    out: dict[str, Any] = {"total": total, "ok": [], "skipped": [], "failed": [], "incomplete": []}
    root = Path(sweep_dir)
    prog = {str(Path(p.get("dir", "")).resolve()): p.get("status") for p in read_progress(root)}
    dirs = sorted(h.parent for h in root.rglob(".hydra") if h.parent != root)
    for d in dirs:
        st = (read_status(d) or {}).get("status")
        reported = prog.get(str(d.resolve()))
        done = (d / "summary.json").exists() and st in (None, "ok")
        if st == "failed" and (reported is not None or not prog):
            out["failed"].append(str(d))
        elif reported is not None:
            out[reported if reported in ("ok", "skipped", "failed") else "failed"].append(str(d))
        elif not done and st != "failed":
            out["incomplete"].append(str(d))
        elif not prog:
            out["ok"].append(str(d))
    out["done"] = len(out["ok"]) + len(out["skipped"]) + len(out["failed"])
    # jobs that never started (no directory): killed sweep, or a launcher that lost them
    out["missing"] = (max(0, total - out["done"] - len(out["incomplete"]))
                      if total is not None else 0)
    return out
