"""Every module of the package imports on its own in a fresh interpreter: a circular import
that the usual import order hides (sim.runner first) fails here.  One regression: sim.aftermath
imported sim.initial at module level, which imports sim.agents, which imports sim.aftermath, so
``import sim.agents`` (the benchmark's first import) failed."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sim
import sim.rules


def _modules() -> list[str]:
    out = []
    for pkg in (sim, sim.rules):
        out += [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]
    return sorted(out)


def test_every_module_imports_alone():
    mods = _modules()
    assert "sim.agents" in mods and "sim.rules.sieges" in mods
    failed = {}
    for k in range(0, len(mods), 4):  # four interpreters at a time (~100 MB each)
        procs = {m: subprocess.Popen([sys.executable, "-c", f"import {m}"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for m in mods[k:k + 4]}
        for m, p in procs.items():
            _, err = p.communicate(timeout=300)
            if p.returncode != 0:
                failed[m] = err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}"
    assert not failed, failed
