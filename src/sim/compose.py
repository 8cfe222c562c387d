"""Hydra at the edge: composing configs, in one small module.

Every use of Hydra outside the ``sim run`` entry point (:mod:`sim.cli`), its callbacks
(:mod:`sim.callbacks`) and launcher plugin (``hydra_plugins.sim_launcher``) goes through
here: the app, the commands, the notebooks and the tests call :func:`compose` and get a plain
resolved dict, which :func:`sim.runner.run_scenario` validates.  The model, the runner and
the sweep tools never import Hydra.
"""

from __future__ import annotations

import os
from pathlib import Path


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


def new_uid() -> str:
    """A token unique to this process and call: pid (hex) + 4 random hex digits."""
    import secrets

    return f"{os.getpid():x}{secrets.token_hex(2)}"


def register_resolvers() -> None:
    """OmegaConf resolvers of the configs.  ``${sim.uid:}``: a token unique to the launching
    process (:func:`new_uid`), cached in the config like ``${now:...}``, so two sweeps started
    in the same second get different ``hydra.sweep.dir``s and every job of a sweep sees the same
    value.  :mod:`sim.cli` registers it on import too: launcher workers (joblib, submitit, Ray)
    unpickle the task function from there before they resolve the job's directory."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("sim.uid"):
        OmegaConf.register_new_resolver("sim.uid", new_uid, use_cache=True)


def register_configs() -> None:
    """The resolvers, and the schema of :mod:`sim.config` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    register_resolvers()

    from .config import Config, FactionConfig, GeographyConfig

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="geography", name="base_geography", node=GeographyConfig)
    cs.store(group="faction", name="base_faction", node=FactionConfig)


def resolve(cfg) -> dict:
    """A composed OmegaConf config as a plain resolved dict, without the ``hydra`` node."""
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    d.pop("hydra", None)
    return d


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
    return resolve(cfg)


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The jobs (override lists) the basic sweeper makes of command-line ``overrides``."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
    batches = BasicSweeper.split_arguments(parsed, None)
    return [list(job) for batch in batches for job in batch]


def in_sweep() -> bool:
    """True inside a Hydra multirun job."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - no Hydra config: not a sweep
        return False
