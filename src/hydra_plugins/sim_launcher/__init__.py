"""Hydra launcher of the ``sim`` package (Hydra only loads launchers from ``hydra_plugins``)."""

from .sim_launcher import SimLauncher

__all__ = ["SimLauncher"]
