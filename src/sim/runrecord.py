"""Run records that tell the truth (issue 15, item 3).

* :class:`RunGuard` (a Hydra callback, ``hydra.callbacks.run_guard`` in configs/config.yaml)
  checks the run directory of ``sim run`` before Hydra writes anything into it: a directory
  that already holds a run (``status.json``, ``summary.json``, outputs or ``.hydra/``) is never
  overwritten or modified (one line, exit code 2), and a directory that cannot be created or
  written is one line naming the path (exit code 1).
* :func:`signals_raise` turns SIGTERM (and SIGINT) into :class:`Interrupted`, so a run that is
  stopped unwinds like an exception: the atomic writers remove their temporary files and
  :func:`mark_interrupted` records ``status: interrupted``; ``sim run`` then prints one line and
  exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
* :func:`io_error_line` makes one line of a write error (full disk, file size limit, read-only
  or unwritable folder) that names the path, and :func:`quiet_c_stderr` keeps the HDF5 library's
  own error stack (dozens of lines printed from C) out of the terminal; it goes to ``error.log``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: files and folders whose presence means a directory holds a run (finished, failed or running)
RUN_MARKERS = ("status.json", "summary.json", "timeseries.parquet", "control.nc", "INVALID",
               ".hydra")

EXIT_IO = 1
EXIT_REFUSED = 2

#: set by :func:`mark_interrupted`: the run directory of the last interrupted run
LAST_INTERRUPTED: dict[str, Any] = {}


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT or SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")


# --------------------------------------------------------------------------------------
# the run directory
# --------------------------------------------------------------------------------------
def existing_run(outdir: Path) -> str | None:
    """A short description of the run ``outdir`` already holds, or None if it holds none."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        return None
    found = [m for m in RUN_MARKERS if (outdir / m).exists()]
    if not found:
        return None
    from .jobs import read_status

    st = (read_status(outdir) or {}).get("status")
    return (f"status: {st}, " if st else "") + ", ".join(found)


def check_writable(outdir: Path) -> str | None:
    """None if ``outdir`` can be created and written, else one line naming the path.  Creates
    nothing: it probes the folder itself or, if it does not exist yet, its nearest existing
    parent (with a temporary file that is removed at once)."""
    outdir = Path(outdir).absolute()
    probe_dir = outdir
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        return f"cannot write {outdir}: {probe_dir} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".sim_probe.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"cannot write {outdir}: {e.strerror or e}" + (
            f" ({probe_dir})" if probe_dir != outdir else "")
    return None


def io_error_line(err: BaseException, path: Path | str | None = None) -> str:
    """``cannot write <path>: <reason>`` for an OSError (or the error text otherwise)."""
    where = getattr(err, "filename", None) or _file_being_written(err) or path
    text = str(err).strip()
    reason = getattr(err, "strerror", None) or (text.splitlines()[0] if text else type(err).__name__)
    m = re.search(r"\[errno (\d+)\]", text, re.IGNORECASE)
    if m:  # pyarrow: "... Detail: [errno 27] File too large"
        reason = os.strerror(int(m.group(1)))
    code = getattr(err, "errno", None) or (int(m.group(1)) if m else None)
    hint = {errno.ENOSPC: " (disk full)", errno.EFBIG: " (file size limit, ulimit -f?)",
            errno.EDQUOT: " (disk quota)", errno.EROFS: "", errno.EACCES: ""}.get(code, "")
    if not hint and "HDF error" in text:  # netCDF4 does not say why; HDF5's stack is in error.log
        hint = " (disk full, file size limit or unwritable folder?)"
    return f"cannot write {where}: {reason}{hint}" if where else f"write error: {reason}{hint}"


def _file_being_written(err: BaseException) -> str | None:
    """The final path an atomic writer (:func:`sim.outputs.atomic_path`) was writing when
    ``err`` was raised, from the traceback (the libraries name only their temporary file)."""
    tb = err.__traceback__
    found = None
    while tb is not None:
        f = tb.tb_frame
        if f.f_code.co_name in ("atomic_path", "atomic_write") and "path" in f.f_locals:
            found = str(f.f_locals["path"])
        tb = tb.tb_next
    return found


def is_io_error(err: BaseException) -> bool:
    """A write failure of the machine (disk, limits, permissions), not a bug of the run."""
    if isinstance(err, OSError) and getattr(err, "errno", None) in (
            errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
            errno.EIO):
        return True
    text = str(err)
    # netCDF4/HDF5 and pyarrow report write failures in their own words
    return any(s in text for s in ("No space left", "File too large", "Disk quota",
                                   "Read-only file system", "Permission denied",
                                   "NetCDF: HDF error", "HDF5 error"))


def record_io_failure(outdir: Path, line: str, detail: str,
                      overrides: list[str] | None = None) -> None:
    """Record a run that failed on a write error, as far as the disk allows: ``status.json``
    first (rewritten in place if a new file cannot be made: a full disk still has the blocks
    of the old one), then ``error.log``.  Logging errors are silenced from here on (a log file
    on a full disk would print a traceback per message)."""
    import gc
    import logging

    from .jobs import ERROR_FILE, STATUS_FILE, _now, read_status, write_status
    from .outputs import summary_json

    logging.raiseExceptions = False
    # a failed netCDF write can hold its (deleted) temporary file open, and its disk space
    fm = sys.modules.get("xarray.backends.file_manager")
    if fm is not None:
        with contextlib.suppress(Exception):
            for manager in list(fm.FILE_CACHE.values()):
                with contextlib.suppress(Exception):
                    manager.close()
            fm.FILE_CACHE.clear()
    gc.collect()
    info: dict[str, Any] = {"error": line, "finished": _now()}
    if overrides is not None:
        info["overrides"] = list(overrides)
    outdir = Path(outdir)
    try:
        write_status(outdir, "failed", **info)
    except OSError:
        data = {**(read_status(outdir) or {}), **info, "status": "failed"}
        with contextlib.suppress(OSError), open(outdir / STATUS_FILE, "r+b") as fh:
            fh.write(summary_json(data).encode("utf-8"))
            fh.truncate()
    try:
        (outdir / ERROR_FILE).write_text(detail.rstrip() + "\n", encoding="utf-8")
    except OSError:  # the disk is still full: no empty error.log (status.json has the line)
        with contextlib.suppress(OSError):
            if (outdir / ERROR_FILE).stat().st_size == 0:
                (outdir / ERROR_FILE).unlink()


# --------------------------------------------------------------------------------------
# signals
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block SIGTERM and SIGINT raise :class:`Interrupted` (main thread only;
    elsewhere the block runs unchanged).  The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise Interrupted(signum)

    old = {}
    for s in (signal.SIGTERM, signal.SIGINT):
        try:
            old[s] = signal.signal(s, handler)
        except (ValueError, OSError):  # not allowed here
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(s, h)


def signal_number(err: BaseException) -> int:
    return getattr(err, "signum", signal.SIGINT)


def remove_temporaries(outdir: Path) -> list[str]:
    """Remove the atomic writers' temporary files (``.<name>.*.tmp``) left in ``outdir``."""
    gone = []
    for p in Path(outdir).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            p.unlink()
            gone.append(p.name)
    return gone


def mark_interrupted(outdir: Path, err: BaseException, overrides: list[str] | None = None) -> None:
    """Record an interrupted run: ``status: interrupted`` and no temporary files left."""
    from .jobs import _now, write_status

    outdir = Path(outdir)
    remove_temporaries(outdir)
    name = signal.Signals(signal_number(err)).name
    LAST_INTERRUPTED.clear()
    LAST_INTERRUPTED.update(dir=str(outdir), signal=name)
    info: dict[str, Any] = {"error": f"interrupted by {name}", "finished": _now()}
    if overrides is not None:
        info["overrides"] = list(overrides)
    with contextlib.suppress(OSError):
        write_status(outdir, "interrupted", **info)


# --------------------------------------------------------------------------------------
# C-level stderr (HDF5 error stacks)
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_c_stderr(keep: list[str]) -> Iterator[None]:
    """Capture what C libraries write to file descriptor 2 within the block.  On success it is
    replayed to stderr unchanged; if the block raises, it is appended to ``keep`` instead (the
    caller puts it into ``error.log``) so the terminal gets one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    except OSError:
        yield
        return
    os.dup2(tmp.fileno(), 2)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        try:
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        tmp.close()
        if text:
            if failed:
                keep.append(text)
            else:
                sys.stderr.write(text)


# --------------------------------------------------------------------------------------
# the Hydra callback
# --------------------------------------------------------------------------------------
try:
    from hydra.experimental.callback import Callback as _Callback
except ImportError:  # pragma: no cover - hydra is a dependency
    _Callback = object  # type: ignore[assignment,misc]


class RunGuard(_Callback):
    """Before Hydra writes ``.hydra/`` and the job log into ``sim run``'s directory: refuse a
    directory that holds a run, and one that cannot be written (one line each)."""

    def on_run_start(self, config, **kwargs: Any) -> None:
        try:
            outdir = Path(str(config.hydra.run.dir))
        except Exception as e:  # noqa: BLE001 - an interpolation error: name the key at fault
            _report_interpolation(config, e)
            return
        # the scenario name is part of the default run directory: check it before anything is
        # created (``scenario.name=../../x`` would otherwise make folders outside outputs/)
        from .config import ConfigError
        from .semantic import _check_names

        try:
            _check_names(_Names(str(config.scenario.name)))
        except ConfigError as e:
            print(f"config error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_REFUSED) from None
        except Exception:  # noqa: BLE001, S110 - a missing or bad value: validation reports it
            pass
        held = existing_run(outdir)
        if held:
            print(f"run directory {outdir} already holds a run ({held}); not overwriting it: "
                  "give another hydra.run.dir", file=sys.stderr)
            raise SystemExit(EXIT_REFUSED)
        problem = check_writable(outdir)
        if problem:
            print(problem, file=sys.stderr)
            raise SystemExit(EXIT_IO)


class _Names:
    """The one value :func:`sim.semantic._check_names` reads, from a composed Hydra config."""

    def __init__(self, name: str):
        self.scenario = type("S", (), {"name": name})()


def _report_interpolation(config, err: BaseException) -> None:
    """``hydra.run.dir`` did not resolve (e.g. ``scenario.name=${scenario.name}``, a loop):
    find the key of the task config at fault and say so in one line (exit code 2); Hydra
    itself would name only ``hydra.run.dir``."""
    import copy

    from omegaconf import OmegaConf, open_dict

    from .cli import _one_line

    try:
        task = copy.deepcopy(config)
        with open_dict(task):
            del task["hydra"]
        OmegaConf.to_container(task, resolve=True)
    except Exception as e:  # noqa: BLE001
        if getattr(e, "full_key", None):
            print(f"config error: {_one_line(e)}", file=sys.stderr)
            raise SystemExit(EXIT_REFUSED) from None
    del err  # not a task key: Hydra reports it (naming hydra.run.dir)
