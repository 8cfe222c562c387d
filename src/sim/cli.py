"""Command line: ``sim run|collect|compare|sensitivity|validate|app|export``.

Only this module imports Hydra.  ``sim run`` composes ``configs/config.yaml`` with any Hydra
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

log = logging.getLogger("sim")

SUBCOMMANDS = ("run", "collect", "compare", "sensitivity", "validate", "app", "bench", "export")


def config_dir() -> Path:
    """The ``configs/`` folder: the repository's (editable install) or the packaged copy."""
    env = os.environ.get("SIM_CONFIG_DIR")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for cand in (here.parents[2] / "configs", here.parent / "configs"):
        if (cand / "config.yaml").exists():
            return cand
    raise FileNotFoundError("configs/config.yaml not found; set SIM_CONFIG_DIR")


def register_resolvers() -> None:
    """OmegaConf resolvers of the configs.  ``${sim.uid:}``: a token unique to the launching
    process (pid + random hex), cached in the config like ``${now:...}``, so two sweeps started
    in the same second get different ``hydra.sweep.dir``s and every job of a sweep sees the same
    value.  Registered on import of this module too: launcher workers (joblib, submitit, Ray)
    unpickle the task function from here before they resolve the job's directory."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("sim.uid"):
        OmegaConf.register_new_resolver("sim.uid", _uid, use_cache=True)


def _uid() -> str:
    import secrets

    return f"{os.getpid():x}{secrets.token_hex(2)}"


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    register_resolvers()

    from .config import Config, FactionConfig, GeographyConfig

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="geography", name="base_geography", node=GeographyConfig)
    cs.store(group="faction", name="base_faction", node=FactionConfig)


def _resolve(cfg) -> dict:
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    d.pop("hydra", None)
    return d


def _run_job(cfg) -> dict | None:
    """The body of one Hydra job (one run of a sweep).

    In a sweep (``sim run -m``) a run that fails, on its config or while running, writes
    ``error.log`` and ``status.json`` and returns, so the other runs go on; a run whose
    ``summary.json`` holds the same config is skipped (:mod:`sim.jobs`)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import OmegaConfBaseException

    from .config import ConfigError, from_dict, validate_geography
    from .jobs import in_sweep, mark_failed, run_job, skip_if_finished

    outdir = Path(HydraConfig.get().runtime.output_dir)
    sweep, overrides = in_sweep(), list(HydraConfig.get().overrides.task)
    try:
        # validated by sim.config alone (as runner.as_config does): a bad value fails fast,
        # before numpy/scipy/pandas are even imported
        conf = from_dict(_resolve(cfg))
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
    return run_job(conf, outdir, overrides, sweep=sweep, skip_finished=False)


def _map_errors() -> tuple[type[Exception], ...]:
    """MemoryBudgetError and PlaceNotFound if sim.geography is loaded (else none was raised)."""
    geo = sys.modules.get(f"{__package__}.geography")
    return (geo.MemoryBudgetError, geo.PlaceNotFound) if geo is not None else ()


def run_and_save(conf, outdir: Path) -> dict:
    """Run one scenario and write its outputs and plots into ``outdir``."""
    from .outputs import write_run_outputs
    from .runner import run_scenario

    outdir.mkdir(parents=True, exist_ok=True)
    res = run_scenario(conf)
    write_run_outputs(res, outdir, netcdf=conf.output.netcdf)
    if conf.output.plots:
        from .plotting import save_run_plots

        save_run_plots(res, outdir, conf.output.map_dates, gif=conf.output.gif, dpi=conf.output.dpi)
    log.info("scenario %s seed %s: %d steps in %.2f s -> %s", conf.scenario.name, conf.seed,
             conf.scenario.weeks, res.wall_seconds, outdir)
    return res.summary


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

    callbacks.LAST_SWEEP.clear()
    try:
        with _hydra_errors_on_one_line():
            decorated()
    except SystemExit as e:
        return int(e.code or 0)
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


def compose(overrides: list[str] | None = None) -> dict:
    """Compose the config with overrides (no run directory), as a plain resolved dict.
    For notebooks, the app and tests: ``run_scenario(compose(["scenario=us_withdrawal"]))``."""
    from hydra import compose as h_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = h_compose(config_name="config", overrides=list(overrides or []))
    return _resolve(cfg)


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
