"""``sim app``: serve the interactive Mesa/Solara app (:mod:`sim.app`) in a browser.

    sim app                              # http://127.0.0.1:8765 (this machine only)
    sim app --port 9000 --scenario us_withdrawal --geography res_005

Needs the ``app`` extra: ``pip install -e ".[app]"`` (Solara, its front-end assets for offline
use, and the Vue-2 widget libraries Mesa's page is built with).  The server listens on
127.0.0.1 unless ``--host`` says otherwise.  It has no authentication: any other host (e.g.
``--host 0.0.0.0``) prints a warning and needs ``--yes`` to confirm.  ``--scenario`` and
``--geography`` must name files of the config groups (``configs/scenario/*.yaml``,
``configs/geography/*.yaml``), and the port is bound once before "serving on ..." is printed,
so a busy port fails with one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sim app", description="Serve the interactive simulation app.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = a free port)")
    p.add_argument("--scenario", default=None,
                   help="scenario selected when the page opens (default baseline_2017)")
    p.add_argument("--geography", default=None,
                   help="geography config for the app's runs (default res_010, ~11 km cells)")
    p.add_argument("--yes", action="store_true",
                   help="confirm serving on a host other than localhost (no authentication)")
    p.add_argument("--open", action="store_true", help="open a browser tab")
    p.add_argument("--dev", action="store_true",
                   help="development mode: unminified front-end, restart on code changes")
    return p


def _check_install() -> str | None:
    """A problem with the app's dependencies, or None."""
    if importlib.util.find_spec("solara") is None:
        return 'Solara is not installed: pip install -e ".[app]"'
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("ipyvue").split(".")[0])
    except (PackageNotFoundError, ValueError):
        major = 1
    if major >= 2:
        return ('ipyvue >= 2 (Vue 3) is installed; Mesa 3.5\'s page needs the Vue-2 widgets: '
                'pip install "ipyvue<2" "ipyvuetify<2"')
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(list(argv or []))
    problem = _check_install()
    if problem:
        print(f"sim app: {problem}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"sim app: --port {args.port}: expected 0..65535", file=sys.stderr)
        return 2
    from ..compose import config_dir

    env = dict(os.environ)
    for group, value, var in (("scenario", args.scenario, "SIM_APP_SCENARIO"),
                              ("geography", args.geography, "SIM_APP_GEOGRAPHY")):
        if value is None:
            continue
        names = group_names(config_dir(), group)
        if value not in names:
            print(f"sim app: unknown {group} {value!r}; one of: {', '.join(names)}",
                  file=sys.stderr)
            return 2
        env[var] = value
    if args.host not in LOCAL_HOSTS:
        print(f"sim app: WARNING: --host {args.host} makes the app reachable from other "
              "machines, without authentication: anyone who can reach this port can run the "
              "model on this machine.", file=sys.stderr)
        if not args.yes:
            print("sim app: add --yes to confirm (or leave out --host to serve on 127.0.0.1 "
                  "only)", file=sys.stderr)
            return 2
    try:
        port = check_bind(args.host, args.port)
    except OSError as e:
        print(f"sim app: cannot listen on {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 2
    args.port = port
    env.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "false")  # no usage pings
    if importlib.util.find_spec("solara_assets") is None:
        print("sim app: solara-assets is not installed; the page will fetch its front-end from a "
              "CDN (needs internet).  pip install -e \".[app]\" for offline use.", file=sys.stderr)
    cmd = [sys.executable, "-m", "solara", "run", "sim.app", "--host", args.host,
           "--port", str(args.port), "--no-check-version", "--open" if args.open else "--no-open"]
    cmd += ["--auto-restart"] if args.dev else ["--production"]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"sim app: serving on http://{shown}:{args.port} (Ctrl-C stops)", file=sys.stderr,
          flush=True)
    # The server runs in a child process: after a browser session, Solara's graceful shutdown
    # can wait forever, so Ctrl-C / SIGTERM here stop it and kill it if it lingers.
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_interrupt),
                # also when started in the background, where SIGINT is inherited as ignored
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def group_names(config_dir, group: str) -> list[str]:
    """Names of the options of a config group (``configs/<group>/*.yaml``), sorted."""
    return sorted(p.stem for p in (config_dir / group).glob("*.yaml"))


def check_bind(host: str, port: int) -> int:
    """Bind ``host:port`` once (and release it) so a busy port or a bad address fails here,
    with one line, before the server starts; port 0 picks a free port.  Returns the port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(e.errno, f"unknown host ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if os.name == "posix":  # as the server does: ignores TIME_WAIT, not a listening socket
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        return int(s.getsockname()[1])


def _raise_interrupt(signum, frame):  # SIGTERM -> the same clean stop as Ctrl-C
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    for action in (lambda: proc.send_signal(signal.SIGINT), proc.kill):
        if proc.poll() is not None:
            return
        try:
            action()
            proc.wait(timeout=grace)
            return
        except (subprocess.TimeoutExpired, KeyboardInterrupt):  # lingering, or Ctrl-C again
            continue
        except ProcessLookupError:
            return
