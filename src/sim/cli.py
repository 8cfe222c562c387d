"""Command line: ``sim run|collect|compare|sensitivity|discover|validate|app|export``.

Only this module, :mod:`sim.compose` (config composition for everyone else), the sweep
callbacks and the launcher plugin import Hydra.  ``sim run`` composes ``configs/config.yaml`` with any Hydra
overrides (``sim run scenario=us_withdrawal geography=res_010 seed=3``, ``sim run -m ...`` for
sweeps), validates the result against the schema in :mod:`sim.config` and calls
:func:`sim.runner.run_scenario`, then writes the outputs and plots into Hydra's run directory.
A bad config fails before the run with one line naming the key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from .compose import compose, config_dir, in_sweep, register_configs, register_resolvers, resolve

log = logging.getLogger("sim")

__all__ = ["SUBCOMMANDS", "compose", "config_dir", "hydra_run", "main", "register_resolvers"]

SUBCOMMANDS = ("run", "collect", "compare", "sensitivity", "discover", "validate", "app", "export")


def _run_job(cfg) -> dict | None:
    """The body of one Hydra job (one run of a sweep).

    In a sweep (``sim run -m``) a run that fails, on its config or while running, writes
    ``error.log`` and ``status.json`` and returns, so the other runs go on; a run whose
    ``summary.json`` holds the same config is skipped (:mod:`sim.jobs`)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import OmegaConfBaseException

    from .config import ConfigError, from_dict, validate_geography
    from .invariants import InvariantError
    from .jobs import mark_failed, run_job, skip_if_finished
    from .runrecord import EXIT_IO, io_error_line, is_io_error

    outdir = Path(HydraConfig.get().runtime.output_dir)
    # unresolved: an override like ``scenario.name=${scenario.name}`` is an interpolation
    # string in Hydra's config too; resolving it here would fail before the key is named
    from omegaconf import OmegaConf

    sweep = in_sweep()
    overrides = [str(o) for o in OmegaConf.to_container(HydraConfig.get().overrides.task,
                                                          resolve=False)]
    try:
        # validated by sim.config alone (as runner.as_config does): a bad value fails fast,
        # before numpy/scipy/pandas are even imported
        conf = from_dict(resolve(cfg))
        if sweep and (skipped := skip_if_finished(conf, outdir)):
            return skipped  # before building the map: a resumed sweep skips fast
        # checks that need the map (memory budget, gazetteer names, rivers) also come before the
        # run; the geography is cached in the process, so the run reuses it
        from .geography import build_geography

        geo = build_geography(conf.geography, n_factions=len(conf.factions),
                              n_steps=conf.scenario.weeks)
        validate_geography(conf, geo)
    except (ConfigError, OmegaConfBaseException, *_map_errors()) as e:
        if sweep:  # keep .hydra/ (collect reads the overrides); the sweep goes on
            log.error("config error: %s -> %s", _one_line(e), outdir)
            return mark_failed(outdir, f"config error: {_one_line(e)}", overrides)
        _fail(outdir, f"config error: {_one_line(e)}", config_error=True)
        raise SystemExit(2) from None
    try:
        return run_job(conf, outdir, overrides, sweep=sweep, skip_finished=False)
    except InvariantError as e:  # one line; the data are kept in outdir, marked INVALID
        print(f"run failed: {e} (data kept for inspection in {outdir}, marked INVALID)",
              file=sys.stderr)
        raise SystemExit(3) from None
    except Exception as e:
        if not is_io_error(e):
            raise
        print(io_error_line(e, outdir), file=sys.stderr)
        raise SystemExit(EXIT_IO) from None


def _map_errors() -> tuple[type[Exception], ...]:
    """MemoryBudgetError and PlaceNotFound if sim.geography is loaded (else none was raised)."""
    geo = sys.modules.get(f"{__package__}.geography")
    return (geo.MemoryBudgetError, geo.PlaceNotFound) if geo is not None else ()


def _fail(outdir: Path, msg: str, config_error: bool = False) -> None:
    """Write ``msg`` to ``outdir/error.log`` and stderr.  With ``config_error`` the run never
    started, so the files Hydra put into the run directory before the job (``.hydra/`` and an
    empty job log) are removed too: a rejected config leaves ``error.log`` only."""
    outdir.mkdir(parents=True, exist_ok=True)
    if config_error:
        _discard_hydra_files(outdir)
    (outdir / "error.log").write_text(msg + "\n", encoding="utf-8")
    print(msg, file=sys.stderr)


def _discard_hydra_files(outdir: Path) -> None:
    import shutil

    from hydra.core.hydra_config import HydraConfig

    sub = HydraConfig.get().output_subdir
    if sub:
        shutil.rmtree(outdir / sub, ignore_errors=True)
    # the job log: close Hydra's file handler; drop the file if this job wrote nothing to it
    # (a log that already holds lines is an earlier run's in a reused directory: kept)
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == outdir.resolve():
            root.removeHandler(h)
            h.close()
            f = Path(h.baseFilename)
            if f.exists() and f.stat().st_size == 0:
                f.unlink()


def _one_line(err: BaseException) -> str:
    """An error message (and its cause's) on one line, without OmegaConf's key/type details."""
    parts: list[str] = []
    for e in (err, err.__cause__):
        if e is None:
            continue
        lines: list[str] = []
        for raw in str(e).splitlines():
            line = raw.strip().rstrip(".")
            if line.startswith("Config search path"):
                break
            if not line or line.startswith(("full_key:", "reference_type=", "object_type=")):
                continue
            if raw[:1] == "\t" and lines:  # an indented list (e.g. the available options)
                lines[-1] += (" " if lines[-1].endswith(":") else ", ") + line
            else:
                lines.append(line)
        parts += [x for x in lines if x not in parts]
    msg = "; ".join(x.rstrip(":") for x in parts) or type(err).__name__
    # OmegaConf names the full key on a line dropped above; a parse error names the override
    key = (getattr(err, "full_key", None) or getattr(err.__cause__, "full_key", None)
           or getattr(err, "override", None))
    if key and key not in msg:
        msg = f"{key}: {msg}"
    return msg


def hydra_run(argv: list[str]) -> int:
    import hydra

    register_configs()
    sys.argv = [sys.argv[0], *argv]
    decorated = hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(_run_job)
    from . import callbacks
    from .runrecord import LAST_INTERRUPTED, signal_number, signals_raise

    callbacks.LAST_SWEEP.clear()
    LAST_INTERRUPTED.clear()
    try:
        with signals_raise(), _hydra_errors_on_one_line():
            decorated()
    except SystemExit as e:
        return int(e.code or 0)
    except KeyboardInterrupt as e:  # SIGINT or SIGTERM (runrecord.Interrupted): one line
        import signal

        name = signal.Signals(signal_number(e)).name
        where = LAST_INTERRUPTED.get("dir")
        print(f"interrupted by {name}" + (f": {where} marked interrupted" if where else ""),
              file=sys.stderr)
        return 128 + signal_number(e)
    # a sweep whose runs all ran but some failed: exit code 3 (the failures are listed above)
    return 3 if callbacks.LAST_SWEEP.get("failed") else 0


@contextlib.contextmanager
def _hydra_errors_on_one_line():
    """Errors of Hydra's composition (unknown key, wrong type, missing config group option, bad
    override syntax) as one ``config error: ...`` line and exit code 2, like a value that
    fails :func:`sim.config.validate`.  Hydra would print them over several lines (or with a
    traceback); here it lets them through (``HYDRA_FULL_ERROR``) and they are caught below.
    A user who sets ``HYDRA_FULL_ERROR=1`` gets Hydra's full report as usual."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user_full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except (HydraException, OmegaConfBaseException) as e:
        if user_full == "1":
            raise
        print(f"config error: {_one_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if user_full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = user_full


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = "run"
    if argv and argv[0] in SUBCOMMANDS:
        cmd = argv.pop(0)
    elif argv and argv[0] in ("-h", "--help") and len(argv) == 1:
        print(__doc__)
        print("Subcommands: " + ", ".join(SUBCOMMANDS) + ".  `sim run --help` shows Hydra's help.")
        return 0
    if cmd == "run":
        code = hydra_run(argv)
    else:
        import importlib

        mod = importlib.import_module(f"sim.commands.{cmd}")
        code = mod.main(argv)
    return code


with contextlib.suppress(ImportError):  # see register_resolvers
    register_resolvers()

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
