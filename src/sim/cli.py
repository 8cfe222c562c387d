"""Command line: ``sim run|collect|compare|validate|app``.

Only this module imports Hydra.  ``sim run`` composes ``configs/config.yaml`` with any Hydra
overrides (``sim run scenario=us_withdrawal geography=res_010 seed=3``, ``sim run -m ...`` for
sweeps), validates the result against the schema in :mod:`sim.config` and calls
:func:`sim.runner.run_scenario`, then writes the outputs and plots into Hydra's run directory.
A bad config fails before the run with one line naming the key.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("sim")

SUBCOMMANDS = ("run", "collect", "compare", "validate", "app", "bench")


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


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

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
    """The body of one Hydra job (one run of a sweep)."""
    from hydra.core.hydra_config import HydraConfig

    from .config import ConfigError
    from .runner import as_config

    outdir = Path(HydraConfig.get().runtime.output_dir)
    try:
        conf = as_config(_resolve(cfg))
    except ConfigError as e:
        _fail(outdir, f"config error: {e}")
        raise SystemExit(2) from None
    return run_and_save(conf, outdir)


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


def _fail(outdir: Path, msg: str) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "error.log").write_text(msg + "\n", encoding="utf-8")
    print(msg, file=sys.stderr)


def hydra_run(argv: list[str]) -> int:
    import hydra

    register_configs()
    sys.argv = [sys.argv[0], *argv]
    decorated = hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(_run_job)
    try:
        decorated()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
