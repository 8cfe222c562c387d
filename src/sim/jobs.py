"""One run of a sweep as a job: status markers, skipping finished runs, failure isolation.

Every run directory of a sweep gets ``status.json``::

    {"status": "running" | "ok" | "failed" | "interrupted", "overrides": [...], "started": ...,
     "finished": ..., "seconds": ..., "error": "last line of the error", "pid": ..., "host": ...,
     "failed_invariant": "name (only when a run-end invariant failed)"}

* ``running`` is written when the run starts; a directory left in that state (killed, out of
  memory, still running) is reported as *incomplete* by ``sim collect``.
* ``ok`` is written after ``summary.json`` (itself written last of the outputs).
* ``failed``: the run raised; the traceback is in ``error.log``.  In a sweep the exception is
  swallowed so the other runs go on; a single ``sim run`` re-raises it (non-zero exit code).
  A run that broke a run-end invariant (:mod:`sim.invariants`) is ``failed`` with
  ``failed_invariant``; its data are kept beside an ``INVALID`` file.
* ``interrupted``: SIGINT or SIGTERM stopped the run (:mod:`sim.runrecord`); no temporary files
  are left.

A rerun of a sweep into the same directory (``hydra.sweep.dir=...``) skips every run whose
``summary.json`` already holds exactly the same resolved config (and whose status is ``ok``).
``SIM_RERUN=1`` forces the runs anyway.

``SIM_FAULT_INJECT`` makes chosen runs fail on purpose (tests of the failure handling): a
``;``-separated list of overrides as they appear on the command line (``replicate=3``) or of
``key=value`` pairs of the resolved config (``scenario.name=us_withdrawal``); ``*`` fails every
run.  A run fails when any item matches.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

log = logging.getLogger("sim")

STATUS_FILE = "status.json"
ERROR_FILE = "error.log"
SUMMARY_FILE = "summary.json"
FAULT_ENV = "SIM_FAULT_INJECT"
RERUN_ENV = "SIM_RERUN"


class InjectedFault(RuntimeError):
    """Raised on purpose by :envvar:`SIM_FAULT_INJECT`."""


# --------------------------------------------------------------------------------------
# status markers
# --------------------------------------------------------------------------------------
def read_status(outdir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(outdir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None


def write_status(outdir: Path, status: str, **info: Any) -> dict[str, Any]:
    """Write ``status.json`` atomically (merged over the previous one)."""
    from .outputs import atomic_write, summary_json

    outdir = Path(outdir)
    prev = read_status(outdir) or {}
    data = {**prev, **info, "status": status, "pid": os.getpid(), "host": socket.gethostname()}
    if status == "running":
        for k in ("finished", "seconds", "error"):
            data.pop(k, None)
    text = summary_json(data)
    atomic_write(outdir / STATUS_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return data


def mark_failed(outdir: Path, message: str, overrides: list[str] | None = None,
                detail: str | None = None, **extra: Any) -> dict[str, Any]:
    """Record a failed run: ``error.log`` (``detail`` or ``message``) and ``status.json``
    (plus ``extra`` fields, e.g. ``failed_invariant``)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / ERROR_FILE).write_text((detail or message).rstrip() + "\n", encoding="utf-8")
    info: dict[str, Any] = {"error": message.strip().splitlines()[-1] if message.strip() else "",
                            "finished": _now(), **extra}
    if overrides is not None:
        info["overrides"] = list(overrides)
    write_status(outdir, "failed", **info)
    return {"status": "failed", "output_dir": str(outdir), "error": info["error"]}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# --------------------------------------------------------------------------------------
# skipping finished runs
# --------------------------------------------------------------------------------------
def config_fingerprint(conf) -> Any:
    """The resolved config as plain JSON data (what ``summary.json["config"]`` holds)."""
    import dataclasses

    from .outputs import summary_json

    d = dataclasses.asdict(conf) if dataclasses.is_dataclass(conf) else dict(conf)
    return json.loads(summary_json({"config": d}))["config"]


def finished(outdir: Path, conf) -> bool:
    """True if ``outdir`` holds the complete outputs of a run with exactly this config."""
    outdir = Path(outdir)
    summ = outdir / SUMMARY_FILE
    if not summ.exists():
        return False
    status = read_status(outdir)
    if status is not None and status.get("status") != "ok":
        return False
    try:
        old = json.loads(summ.read_text(encoding="utf-8")).get("config")
    except (json.JSONDecodeError, OSError):
        return False
    return old == config_fingerprint(conf)


def skip_if_finished(conf, outdir: Path) -> dict[str, Any] | None:
    """``{"status": "skipped", ...}`` if ``outdir`` holds this config's finished run (and
    ``SIM_RERUN`` is not set), else None."""
    if os.environ.get(RERUN_ENV, "").lower() in ("1", "true", "yes"):
        return None
    if not finished(outdir, conf):
        return None
    log.info("skipping %s: finished run with the same config (SIM_RERUN=1 reruns it)", outdir)
    return {"status": "skipped", "output_dir": str(outdir), "seconds": 0.0}


# --------------------------------------------------------------------------------------
# fault injection
# --------------------------------------------------------------------------------------
def _lookup(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return _MISSING
        d = d[part]
    return d


_MISSING = object()


def fault_requested(overrides: list[str], conf=None) -> str | None:
    """The item of :envvar:`SIM_FAULT_INJECT` that matches this run, or None."""
    spec = os.environ.get(FAULT_ENV, "").strip()
    if not spec:
        return None
    items = [s.strip() for s in spec.split(";") if s.strip()]
    plain = None
    for item in items:
        if item == "*" or item in overrides:
            return item
        if "=" in item and conf is not None:
            if plain is None:
                import dataclasses

                plain = dataclasses.asdict(conf) if dataclasses.is_dataclass(conf) else dict(conf)
            key, value = item.split("=", 1)
            got = _lookup(plain, key.strip())
            if got is not _MISSING and str(got) == value.strip():
                return item
    return None


# --------------------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------------------
def run_job(conf, outdir: Path, overrides: list[str] | None = None, sweep: bool = True,
            skip_finished: bool | None = None) -> dict[str, Any]:
    """Run one validated config into ``outdir`` with status markers.

    ``sweep``: failures are recorded and returned (``{"status": "failed", ...}``) instead of
    raised.  ``skip_finished`` (default: ``sweep`` unless ``SIM_RERUN=1``): return
    ``{"status": "skipped"}`` without running if :func:`finished`.  Returns a small dict
    ``{"status", "output_dir", "seconds"}`` (``ok``, ``skipped`` or ``failed``).
    """
    outdir = Path(outdir)
    overrides = list(overrides or [])
    if skip_finished is None:
        skip_finished = sweep
    if skip_finished and (skipped := skip_if_finished(conf, outdir)):
        return skipped
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in (outdir / ERROR_FILE,):
        if stale.exists():  # an earlier attempt's failure: keep it for reference, out of the way
            stale.replace(outdir / (ERROR_FILE + ".previous"))
    t0 = time.perf_counter()
    write_status(outdir, "running", overrides=overrides, started=_now())
    from .invariants import InvariantError
    from .runrecord import (
        io_error_line,
        is_io_error,
        mark_interrupted,
        record_io_failure,
        signals_raise,
    )

    try:
        with signals_raise():  # SIGTERM/SIGINT: status "interrupted", no temporary files left
            item = fault_requested(overrides, conf)
            if item is not None:
                raise InjectedFault(f"{FAULT_ENV}: injected failure ({item})")
            run_and_save(conf, outdir)
    except KeyboardInterrupt as e:  # includes runrecord.Interrupted (SIGTERM)
        mark_interrupted(outdir, e, overrides)
        raise
    except InvariantError as e:  # the data are kept (marked INVALID); the run failed
        mark_failed(outdir, str(e), overrides, detail="\n".join(map(str, e.violations)),
                    failed_invariant=e.name)
        log.error("run failed: %s -> %s", e, outdir)
        if not sweep:
            raise
        return {"status": "failed", "output_dir": str(outdir), "error": str(e),
                "seconds": time.perf_counter() - t0}
    except Exception as e:  # a sweep must survive any failure of one run
        if is_io_error(e):  # full disk, file size limit, unwritable folder: one line
            line = io_error_line(e, outdir)
            detail = "\n".join([line, *getattr(e, "c_stderr", []), traceback.format_exc()])
            record_io_failure(outdir, line, detail, overrides)  # as far as the disk allows
            log.error("run failed (%s) -> %s", line, outdir)
            if not sweep:
                raise
            return {"status": "failed", "output_dir": str(outdir), "error": line,
                    "seconds": time.perf_counter() - t0}
        msg = f"{type(e).__name__}: {e}"
        mark_failed(outdir, msg, overrides, detail=traceback.format_exc())
        log.error("run failed (%s) -> %s", msg.splitlines()[0] if msg else "", outdir / ERROR_FILE)
        if not sweep:
            raise
        return {"status": "failed", "output_dir": str(outdir), "error": msg,
                "seconds": time.perf_counter() - t0}
    secs = time.perf_counter() - t0
    write_status(outdir, "ok", overrides=overrides, finished=_now(), seconds=round(secs, 3))
    return {"status": "ok", "output_dir": str(outdir), "seconds": secs}


def merge_overrides(*groups: list[str]) -> list[str]:
    """Concatenate Hydra override lists; a later override of the same key replaces an earlier
    one (Hydra itself rejects a key given twice)."""
    out: dict[str, str] = {}
    for group in groups:
        for o in group:
            key = o.split("=", 1)[0].lstrip("+~") if "=" in o else o
            out.pop(key, None)
            out[key] = o
    return list(out.values())


def run_and_save(conf, outdir: Path) -> dict:
    """Run one scenario and write its outputs and plots into ``outdir``."""
    from .invariants import InvariantError
    from .outputs import write_run_outputs
    from .runner import run_scenario
    from .runrecord import quiet_c_stderr

    outdir.mkdir(parents=True, exist_ok=True)
    try:
        res = run_scenario(conf)
    except InvariantError as e:  # keep the data for inspection, clearly marked; no plots
        from .invariants import INVALID_FILE

        (outdir / INVALID_FILE).write_text(
            "These outputs broke run-end invariants (sim.invariants); do not use them:\n"
            + "".join(f"  {v}\n" for v in e.violations), encoding="utf-8")
        if e.results is not None:
            write_run_outputs(e.results, outdir, netcdf=conf.output.netcdf)
        raise
    c_stderr: list[str] = []
    try:
        with quiet_c_stderr(c_stderr):  # HDF5's own error stack: to error.log, not the terminal
            write_run_outputs(res, outdir, netcdf=conf.output.netcdf)
    except Exception as e:
        e.c_stderr = c_stderr  # type: ignore[attr-defined]
        raise
    if conf.output.plots:
        from .plotting import save_run_plots

        save_run_plots(res, outdir, conf.output.map_dates, gif=conf.output.gif, dpi=conf.output.dpi)
    log.info("scenario %s seed %s: %d steps in %.2f s -> %s", conf.scenario.name, conf.seed,
             conf.scenario.weeks, res.wall_seconds, outdir)
    return res.summary
