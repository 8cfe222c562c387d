"""The interactive app (sim.app, ``sim app``).

Fast tests check the model factory behind the page and its figures.  The slow test starts the
real server on 127.0.0.1 and drives it in headless Chromium (Debian's ``chromium``, installed
by ``scripts/install_browser.sh``; Playwright's own browser download is never used): it presses
Step and checks that the map and the charts rendered, with every request served locally
(the front-end assets come from the ``solara-assets`` package, not a CDN).  The screenshot is
kept as ``artifacts/app_step.png``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "artifacts" / "app_step.png"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(module: str):
    """Import ``module``; a missing one skips locally but fails in CI (the test extra has it)."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        if IN_CI:
            raise
        pytest.skip(f"{module} not installed ({e}); pip install -e '.[test]'")


@pytest.fixture(scope="module")
def app():
    _need("solara")
    return _need("sim.app")


# ----------------------------------------------------------------------------- fast


def test_scenarios_listed(app):
    names = app.scenario_names()
    assert "baseline_2017" in names
    assert app.default_scenario() in names


def test_untouched_sliders_keep_the_scenario_values(app):
    start = app.slider_start()
    m = app.AppModel(scenario_name="baseline_2017", air_support=start["air_support"],
                     krg_hostility=start["krg_hostility"], ff_exit_rate=start["ff_exit_rate"])
    assert m.app_levers == {"air": start["air_support"], "krg": start["krg_hostility"],
                            "deconf": start["deconfliction"], "ff": start["ff_exit_rate"]}
    assert m.running and m.steps_done == 0
    m.step()
    assert m.steps_done == 1 and m.time == 1
    if "porous_borders" in app.scenario_names():
        own = app.scenario_levers("porous_borders")["ff_exit_rate"]
        p = app.AppModel(scenario_name="porous_borders", ff_exit_rate=start["ff_exit_rate"])
        assert p.app_levers["ff"] == pytest.approx(own)


def test_moved_sliders_override(app):
    m = app.AppModel(scenario_name="baseline_2017", air_support=0.3, krg_hostility=0.7,
                     ff_exit_rate=0.05, deconfliction=False, replicate=2)
    assert m.cfg.scenario.air_support["us_coalition"].strength == pytest.approx(0.3)
    assert m.cfg.scenario.foreign_fighter_exit_rate == pytest.approx(0.05)
    assert m.cfg.scenario.deconfliction == {}
    assert m.cfg.replicate == 2
    i, k = m.fidx["IRAQI_GOV"], m.fidx["KRG"]
    assert m.hostility0[i, k] == m.hostility0[k, i] == pytest.approx(0.7)
    assert m.app_levers == {"air": pytest.approx(0.3), "krg": pytest.approx(0.7), "deconf": False,
                            "ff": pytest.approx(0.05)}


def test_model_params_match_the_factory(app):
    import inspect

    params = app.model_params()
    sig = inspect.signature(app.AppModel.__init__).parameters
    assert set(params) <= set(sig)
    assert "scenario" not in params  # mesa.Model.scenario is Mesa's own Scenario object
    assert params["scenario_name"]["values"] == app.scenario_names()
    assert params["geography"] == "res_010"


def test_figures_render(app):
    m = app.AppModel()
    for _ in range(2):
        m.step()
    for make in (app.map_figure, app.territory_figure, app.displacement_figure,
                 app.fighting_figure):
        buf = io.BytesIO()
        make(m).savefig(buf, format="png", dpi=60)
        assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buf.getvalue()) > 5_000


def test_grid_layout_installed(app):
    import mesa.visualization.solara_viz as sv

    page0 = [c for c, page in app.COMPONENTS if page == 0]
    lay = sv.make_initial_grid_layout(len(page0))
    assert [c["w"] for c in lay] == [7, 5]
    assert [c["w"] for c in sv.make_initial_grid_layout(1)] == [12]  # the ensemble tab
    assert len(sv.make_initial_grid_layout(3)) == 3  # other pages keep Mesa's layout


def test_command_rejects_bad_arguments(app, capsys):
    from sim.commands.app import main

    assert main(["--scenario", "no_such_scenario"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    assert main(["--port", "70000"]) == 2
    for bad in ("../config", "res_010/../../x", "no_such_map"):  # issue 15: only group names
        assert main(["--geography", bad]) == 2
        assert "unknown geography" in capsys.readouterr().err
    assert main(["--scenario", "../scenario/baseline_2017"]) == 2


def test_command_confirms_public_host_and_checks_the_port(app, capsys, monkeypatch):
    import subprocess as sp

    from sim.commands import app as cmd

    started = []
    monkeypatch.setattr(sp, "Popen", lambda *a, **k: started.append(a) or pytest.fail("started"))
    assert cmd.main(["--host", "0.0.0.0"]) == 2  # no --yes: refused, with a warning
    err = capsys.readouterr().err
    assert "WARNING" in err and "without authentication" in err and "--yes" in err
    assert "serving on" not in err and not started
    # a busy port fails before "serving on" is printed
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert cmd.main(["--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "serving on" not in err
    assert cmd.check_bind("127.0.0.1", 0) > 0  # port 0: a free port is chosen and printed
    assert cmd.main(["--host", "no-such-host.invalid"]) == 2


def test_levers_show_value_unit_and_help(app):
    params = app.model_params()
    for name in ("air_support", "krg_hostility", "ff_exit_rate", "deconfliction", "replicate",
                 "scenario_name"):
        assert params[name]["help"], name  # the tooltip
    assert app.lever_text(params["air_support"], 1.5) == "Coalition air support: 1.5 × 2017 level"
    assert app.lever_text(params["ff_exit_rate"], 0.015) == "Foreign-fighter exit: 1.5% of them / week"
    assert "Reset" not in params["scenario_name"]["label"]  # applied at once, not on Reset
    import mesa.visualization.solara_viz as sv

    assert sv.ModelCreator is app.LeverInputs  # the page's inputs: value, unit, tooltip


def test_ensemble_view_runs_replicates(app):
    settings = {"scenario_name": "baseline_2017", "geography": "tiny", "air_support": None,
                "krg_hostility": None, "ff_exit_rate": None, "deconfliction": True}
    seen = []
    ens = app.run_ensemble(settings, 2, progress=lambda k, n: seen.append((k, n)))
    assert seen == [(1, 2), (2, 2)] and ens["n"] == 2
    assert ens["q10"].shape == ens["q50"].shape == ens["q90"].shape
    assert (ens["q10"] <= ens["q50"] + 1e-12).all() and (ens["q50"] <= ens["q90"] + 1e-12).all()
    assert ens["best"].shape == ens["geo"].shape
    buf = io.BytesIO()
    app.ensemble_figure(ens).savefig(buf, format="png", dpi=50)
    assert len(buf.getvalue()) > 5_000


# ----------------------------------------------------------------------------- browser


def _chromium() -> str | None:
    for cand in (os.environ.get("SIM_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _ensure_chromium() -> str:
    exe = _chromium()
    if exe is None:
        script = ROOT / "scripts" / "install_browser.sh"
        res = subprocess.run(["bash", str(script)], check=False, capture_output=True, text=True,
                             timeout=600)
        exe = _chromium()
        if exe is None:
            pytest.skip("no Chromium and scripts/install_browser.sh could not install it: "
                        + (res.stderr.strip().splitlines() or ["?"])[-1])
    return exe


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sim app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"sim app did not answer on {url}:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C to the server's process group (``sim app`` then stops its Solara child), then
    SIGKILL if anything lingers."""
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue
    try:  # the Solara child, should it have outlived its parent
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


IMGS_JS = """() => Array.from(document.querySelectorAll('img'))
    .filter(i => i.complete && i.naturalWidth > 0)
    .map(i => ({src: i.currentSrc || i.src, w: i.getBoundingClientRect().width,
                h: i.getBoundingClientRect().height, nw: i.naturalWidth}))"""


@pytest.mark.slow
def test_app_in_browser_steps_and_renders(tmp_path):
    _need("solara")
    sync_api = _need("playwright.sync_api")
    exe = _ensure_chromium()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "server.log"
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "false", "MPLBACKEND": "Agg"}
    code = f"from sim.cli import main; raise SystemExit(main(['app', '--port', '{port}']))"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=fh, stderr=subprocess.STDOUT,
                                env=env, cwd=tmp_path, start_new_session=True)
    external: list[str] = []
    problems: list[str] = []
    try:
        _wait_http(url, proc, log, time.monotonic() + 90)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1100})

                def route(r):  # the page must work offline: nothing but this server
                    host = urlparse(r.request.url).hostname
                    if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                        r.continue_()
                    else:
                        external.append(r.request.url)
                        r.abort()

                page.route("**/*", route)
                page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
                page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                page.goto(url, timeout=60_000)
                step = page.get_by_role("button", name="Step")
                step.wait_for(timeout=60_000)
                page.wait_for_function(f"({IMGS_JS})().length >= 2", timeout=60_000)
                before = page.evaluate(IMGS_JS)
                assert page.get_by_text("Time: 0.0").count() == 1
                # the levers show their values with units, and say they apply at once
                page.get_by_text(re.compile(r"Coalition air support: [0-9.]+ × 2017 level")
                                 ).wait_for(timeout=30_000)
                assert page.get_by_text("KRG–Baghdad hostility:").count() == 1
                assert page.get_by_text("Foreign-fighter exit:").count() == 1
                page.get_by_text("restarts the run at week 0").wait_for(timeout=10_000)
                t0 = time.monotonic()
                step.click()
                page.get_by_text("Time: 1.0").wait_for(timeout=45_000)
                # the map and the charts re-render for step 1 (new image data)
                page.wait_for_function(
                    f"""() => {{ const now = ({IMGS_JS})(); const old = {[i['src'] for i in before]!r};
                        return now.length >= 2 && now.every((i, k) => i.src !== old[k]); }}""",
                    timeout=45_000)
                step_seconds = time.monotonic() - t0
                page.wait_for_timeout(500)
                ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACT), full_page=True)
                after = page.evaluate(IMGS_JS)
                body = page.inner_text("body")
                # a lever takes effect at once: the run restarts at week 0 with it
                lever_before = [i["src"] for i in after]
                page.get_by_text("Deconfliction lines", exact=True).click()
                page.get_by_text("Time: 0.0").wait_for(timeout=45_000)
                page.wait_for_function(
                    f"""() => {{ const now = ({IMGS_JS})(); const old = {lever_before!r};
                        return now.length >= 2 && now.some((i, k) => i.src !== old[k]); }}""",
                    timeout=45_000)
                # the ensemble tab
                page.get_by_role("tab", name="Page 1").click()
                page.get_by_role("button", name="Run 3 replicates").wait_for(timeout=30_000)
                ens_text = page.inner_text("body")
            finally:
                browser.close()
    finally:
        _stop(proc)
    assert not external, f"the page asked for outside resources (not offline): {external[:5]}"
    assert not problems, problems[:5]
    assert "Traceback" not in body and "error in step" not in body, body[-2000:]
    assert len(after) >= 2
    sizes = sorted(((i["w"], i["h"]) for i in after), key=lambda s: s[0] * s[1], reverse=True)
    assert all(w >= 350 and h >= 300 for w, h in sizes[:2]), sizes  # the map and the charts
    assert ARTIFACT.stat().st_size > 50_000
    assert "Ensemble" in ens_text and "median" in ens_text
    print(f"browser: Step to re-rendered map and charts took {step_seconds:.2f} s")
