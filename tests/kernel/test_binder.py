"""The Binder configuration (``binder/``): repo2docker's view of it, its files, and
``binder/start`` / ``binder/stop`` run for real.

Three layers:

1. **repo2docker's own detection** (``jupyter-repo2docker --no-build --debug``, which
   needs no docker): the Dockerfile it would build installs ``binder/requirements.txt``
   after copying the whole repository, runs ``binder/postBuild``, uses
   ``binder/start`` as the entrypoint, and the Python of ``binder/runtime.txt``.
   repo2docker is a declared test dependency (the ``test`` extra): missing, the test
   fails (``PREFECT_NBAUTH_REPO2DOCKER`` may point at another executable).
2. **The files' structure and meaning**, always: executables with a bash shebang that
   parse (``bash -n``), ``start`` ends in ``exec "$@"``, the requirements install this
   repository with its notebook extra (which brings PyJWT) plus jupyter-server-proxy, the Jupyter
   config wires the two proxies and hides the UI's login page, even for gzipped answers.
3. **A real run** of ``binder/start`` in a temporary HOME, as under JupyterHub
   (``PREFECT_NBAUTH_DEMO_JUPYTER_BASE_URL=/user/tester/``, UI on): what the command
   gets, what is on disk, the server's auth, ``--restart``, a busy port. A Jupyter server
   under ``/user/tester/`` (with jupyter-server-proxy, a declared test dependency: this
   Python, or ``PREFECT_NBAUTH_TEST_PROXY_PYTHON``) is started and the Prefect UI and API
   are reached through the proxy; with Playwright (declared too) and Debian's chromium, the
   UI is also loaded in a browser. Only a missing chromium skips, as in ``tests/browser/``:
   it is an apt package, not a Python dependency, that ``./scripts/test`` installs as root.

Not covered (needs docker or Binder itself): building and launching the image, the
real ``JUPYTERHUB_SERVICE_PREFIX`` JupyterHub sets, mybinder.org's network and limits.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from repo_copy import copy_tracked
from test_notebooks import (
    AUTH_ENV,
    BINDER,
    REPO,
    DemoRun,
    free_port,
    secret_forms,
    start_demo,
    stop_demo,
)

JUPYTER_CONFIG = BINDER / "jupyter" / "jupyter_server_config.py"
BASE = "/user/tester/"


# ----------------------------------------------------------- 1. repo2docker

def _repo2docker() -> list[str]:
    explicit = os.environ.get("PREFECT_NBAUTH_REPO2DOCKER")
    if explicit:
        return [explicit]
    # A declared test dependency: missing, this fails (never a skip).
    assert importlib.util.find_spec("repo2docker") is not None, (
        "jupyter-repo2docker is missing although the test extra declares it: pip install -e '.[test]'")
    return [sys.executable, "-m", "repo2docker"]


def test_repo2docker_builds_what_we_mean(tmp_path: Path) -> None:
    # --no-build: repo2docker's detection and Dockerfile only; no docker daemon is needed.
    r2d = _repo2docker()
    # Only what git tracks (or would track), as Binder clones it: no .venv, no caches.
    src = copy_tracked(tmp_path / "repo")
    done = subprocess.run([*r2d, "--no-build", "--debug", "--no-run", str(src)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    runtime = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    assert f"python={runtime}" in out, "repo2docker did not pick the Python of binder/runtime.txt"
    copy_all = out.index("COPY --chown=0:0 src/ ${REPO_DIR}/")
    pip = out.index('pip install --no-cache-dir -r "binder/requirements.txt"')
    assert copy_all < pip, "requirements must be installed after the repository is copied (-e .)"
    assert pip < out.index("RUN ./binder/postBuild")
    assert 'R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in out


# ------------------------------------------------------------- 2. the files

@pytest.mark.parametrize("name", ["start", "stop", "postBuild"])
def test_scripts_are_executable_bash_that_parses(name: str) -> None:
    path = BINDER / name
    assert path.stat().st_mode & stat.S_IXUSR, f"binder/{name} is not executable"
    first = path.read_text().splitlines()[0]
    assert first in ("#!/bin/bash", "#!/usr/bin/env bash"), first
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    assert "set -euo pipefail" in path.read_text()


def test_demo_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(REPO / "scripts" / "demo")], capture_output=True).returncode == 0


def test_start_hands_over_to_the_command_with_exec() -> None:
    lines = [l.strip() for l in (BINDER / "start").read_text().splitlines() if l.strip() and not l.strip().startswith("#")]
    assert lines[-1] == 'exec "$@"', "binder/start must end by exec-ing its arguments (repo2docker's contract)"


def test_requirements_install_this_repository_and_what_the_notebooks_need() -> None:
    from packaging.requirements import Requirement

    lines = [l.split("#", 1)[0].strip() for l in (BINDER / "requirements.txt").read_text().splitlines()]
    lines = [l for l in lines if l]
    local = [l for l in lines if l.startswith(("-e", "."))]
    assert local == ["-e .[notebook]"], "install this repository (editable) with its notebook extra"
    names = {Requirement(l).name.lower() for l in lines if l not in local}
    assert {"jupyterlab", "ipykernel", "jupyter-server-proxy"} <= names
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    # The tutorials' gateway emulations (prefect_nbauth.testing) need the testing extra's PyJWT.
    assert "prefect-nbauth[testing]" in extras["notebook"]
    assert any(Requirement(r).name.lower() == "pyjwt" for r in extras["testing"])


def test_runtime_is_a_python_the_package_supports() -> None:
    import tomllib
    from packaging.specifiers import SpecifierSet

    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert runtime.removeprefix("python-") + ".0" in SpecifierSet(requires)


def _load_jupyter_config(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from traitlets.config import Config

    for name in ("PREFECT_NBAUTH_DEMO_UI_PROXY_BASE", "PREFECT_NBAUTH_DEMO_PORT", AUTH_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    c = Config()
    exec(compile(JUPYTER_CONFIG.read_text(), str(JUPYTER_CONFIG), "exec"), {"c": c})  # noqa: S102 - as Jupyter loads it
    return c


class _Response:  # what jupyter-server-proxy hands to rewrite_response
    def __init__(self, body: bytes, headers: dict[str, str], code: int = 200) -> None:
        from tornado.httputil import HTTPHeaders

        self.body, self.code, self.headers = body, code, HTTPHeaders(headers)


def test_jupyter_config_proxies_the_ui_and_api_with_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = "demo:" + "x" * 24
    c = _load_jupyter_config({"PREFECT_NBAUTH_DEMO_UI_PROXY_BASE": BASE, "PREFECT_NBAUTH_DEMO_PORT": "4321",
                              AUTH_ENV: auth}, monkeypatch)
    servers = c.ServerProxy.servers
    assert set(servers) == {"prefect", "prefect-api"}
    ui, api = servers["prefect"], servers["prefect-api"]
    assert ui["port"] == api["port"] == 4321
    assert ui["absolute_url"] is True and api["absolute_url"] is False
    assert ui["launcher_entry"]["enabled"] and not api["launcher_entry"]["enabled"]
    expected = "Basic " + base64.b64encode(auth.encode()).decode()
    assert ui["request_headers_override"]() == api["request_headers_override"]() == {"Authorization": expected}

    settings = {"api_url": f"{BASE}prefect-api/api", "auth": "BASIC", "csrf_enabled": False}
    for body, headers in [(json.dumps(settings).encode(), {"Content-Type": "application/json"}),
                          (gzip.compress(json.dumps(settings).encode()),
                           {"Content-Encoding": "gzip", "Etag": '"abc"'})]:
        response = _Response(body, headers)
        ui["rewrite_response"](response, "/ui-settings")
        assert json.loads(response.body) == {**settings, "auth": None}
        assert "Content-Encoding" not in response.headers and "Etag" not in response.headers
    other = _Response(b'{"auth": "BASIC"}', {})
    ui["rewrite_response"](other, "/api/flows/filter")
    assert other.body == b'{"auth": "BASIC"}'


def test_jupyter_config_does_nothing_outside_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _load_jupyter_config({}, monkeypatch)
    assert "servers" not in c.ServerProxy


# ------------------------------------------------------------ 3. a real run

CALLER_CANARIES = {
    "PREFECT_API_URL": "http://canary.invalid:4200/api",
    "PREFECT_API_KEY": "pnu_" + "CANARY" * 6,
    "PREFECT_API_AUTH_STRING": "canary:" + "C" * 20,
}


@pytest.fixture(scope="module")
def hub_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """binder/start as under JupyterHub (base URL /user/tester/), with the UI, and with
    the caller's own Prefect settings in its environment (which must not leak)."""
    run = start_demo(tmp_path_factory.mktemp("binder-demo"), ui=True,
                     extra_env={"PREFECT_NBAUTH_DEMO_JUPYTER_BASE_URL": BASE, **CALLER_CANARIES})
    try:
        yield run
    finally:
        stop_demo(run)


def _basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


@pytest.mark.server
def test_the_command_gets_the_demo_and_nothing_of_the_callers_prefect(hub_demo: DemoRun) -> None:
    env = hub_demo.env
    assert re.fullmatch(r"demo:[A-Za-z0-9_-]{24}", env[AUTH_ENV])
    assert env["PREFECT_NBAUTH_DEMO_API_URL"] == f"http://127.0.0.1:{hub_demo.port}/api"
    assert env["PREFECT_HOME"] == str(hub_demo.demo_dir / "client-home")
    prefect_vars = {k for k in env if k.startswith("PREFECT_")}
    assert all(k in ("PREFECT_HOME", "PREFECT_UI_URL") or k.startswith("PREFECT_NBAUTH_")
               for k in prefect_vars), prefect_vars
    assert env["PREFECT_UI_URL"] == f"{BASE}prefect"  # the proxied UI (a path: no JUPYTER_URL here)
    for value in CALLER_CANARIES.values():
        assert value not in json.dumps(env)
    assert env["PREFECT_NBAUTH_DEMO_UI_PROXY_BASE"] == BASE
    assert env["PREFECT_NBAUTH_DEMO_UI_URL"] == f"{BASE}prefect/"
    assert str(BINDER / "jupyter") in env["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert Path(env["PREFECT_NBAUTH_DEMO_PYTHON"]).is_absolute()
    assert env[AUTH_ENV] not in hub_demo.start_output
    # On Binder nothing else says where the server is: binder/start's block does.
    assert "==== prefect-nbauth demo: Prefect server ready" in hub_demo.start_output


@pytest.mark.server
def test_nothing_on_disk_holds_the_secret(hub_demo: DemoRun) -> None:
    demo_dir = hub_demo.demo_dir
    assert stat.S_IMODE(demo_dir.stat().st_mode) == 0o700
    info = json.loads((demo_dir / "demo.json").read_text())
    assert stat.S_IMODE((demo_dir / "demo.json").stat().st_mode) == 0o600
    assert set(info) == {"api_url", "auth_string_env", "pid", "ui_url"}
    assert info["auth_string_env"] == AUTH_ENV and info["ui_url"] == f"{BASE}prefect/"
    forms = [f.encode() for f in secret_forms(hub_demo.auth_string)]
    for path in [p for p in demo_dir.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]:
        data = path.read_bytes()
        assert not any(f in data for f in forms), f"{path} holds the auth string"


@pytest.mark.server
def test_the_server_requires_the_auth_string_and_serves_the_ui_for_the_proxy(hub_demo: DemoRun) -> None:
    api, root = hub_demo.api_url, f"http://127.0.0.1:{hub_demo.port}"
    with httpx.Client(timeout=10, trust_env=False) as client:
        assert client.get(f"{api}/health").status_code == 200
        assert client.get(f"{api}/admin/version").status_code == 401
        assert client.get(f"{api}/admin/version", headers=_basic("demo:wrong")).status_code == 401
        assert client.get(f"{api}/admin/version", headers=_basic(hub_demo.auth_string)).status_code == 200
        settings = client.get(f"{root}{BASE}prefect/ui-settings").json()
    assert settings["api_url"] == f"{BASE}prefect-api/api"
    assert settings["auth"] == "BASIC" and settings["v1_base_url"] == f"{BASE}prefect"


@pytest.mark.server
def test_restart_keeps_auth_string_port_and_data(hub_demo: DemoRun) -> None:
    api, auth = hub_demo.api_url, _basic(hub_demo.auth_string)
    name = f"restart_check_{int(time.time())}"
    with httpx.Client(timeout=10, trust_env=False) as client:
        assert client.post(f"{api}/variables/", json={"name": name, "value": "kept"}, headers=auth).status_code == 201
    old_pid = json.loads((hub_demo.demo_dir / "demo.json").read_text())["pid"]
    sso_pid = json.loads((hub_demo.demo_dir / "sso.json").read_text())["pid"]  # notebook 06's provider
    done = subprocess.run(["bash", str(BINDER / "start"), "--restart"], env=hub_demo.env, cwd="/",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert hub_demo.auth_string not in done.stderr
    new_pid = json.loads((hub_demo.demo_dir / "demo.json").read_text())["pid"]
    assert new_pid != old_pid
    # The server only: notebook 04 restarts it, and notebook 06 still needs its provider.
    assert json.loads((hub_demo.demo_dir / "sso.json").read_text())["pid"] == sso_pid
    assert Path(f"/proc/{sso_pid}").exists()
    with httpx.Client(timeout=10, trust_env=False) as client:
        got = client.get(f"{api}/variables/name/{name}", headers=auth)
    assert got.status_code == 200 and got.json()["value"] == "kept"


def test_restart_refuses_outside_a_demo_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(["bash", str(BINDER / "start"), "--restart"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "inside a command that binder/start started" in done.stderr


def test_start_refuses_a_port_it_does_not_own(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(HOME=str(tmp_path), PREFECT_NBAUTH_DEMO_PORT=str(port), PREFECT_NBAUTH_DEMO_PYTHON=sys.executable)
        done = subprocess.run(["bash", str(BINDER / "start"), "true"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 1 and "already in use" in done.stderr


def test_stop_with_nothing_running_is_fine(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_NBAUTH_DEMO_DIR": str(tmp_path / "none")}
    done = subprocess.run(["bash", str(BINDER / "stop")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "nothing to stop" in done.stderr


# ---------------------------------------------- the UI through jupyter-server-proxy

def _proxy_python() -> str:
    explicit = os.environ.get("PREFECT_NBAUTH_TEST_PROXY_PYTHON")
    if explicit:
        return explicit
    # A declared test dependency (and binder/requirements.txt's): missing, this fails.
    assert importlib.util.find_spec("jupyter_server_proxy") is not None, (
        "jupyter-server-proxy is missing although the test extra declares it: pip install -e '.[test]'")
    return sys.executable


@pytest.fixture(scope="module")
def jupyter_under_hub(hub_demo: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = _proxy_python()
    port, token = free_port(), "t" + os.urandom(8).hex()
    log = (tmp_path_factory.mktemp("jupyter") / "jupyter.log").open("wb")
    proc = subprocess.Popen(
        [python, "-m", "jupyter_server", f"--ServerApp.base_url={BASE}", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", "--no-browser", "--allow-root",
         f"--ServerApp.root_dir={tmp_path_factory.mktemp('jupyter-root')}"],
        env=hub_demo.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}{BASE}".rstrip("/")
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(timeout=5, trust_env=False) as client:
            while True:
                try:
                    if client.get(f"{base}/api/status", params={"token": token}).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, "jupyter server exited"
                assert time.monotonic() < deadline, "jupyter server did not start"
                time.sleep(0.2)  # polling the status endpoint
        yield f"{base}|{token}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.server
def test_the_ui_and_api_are_reachable_through_jupyter(jupyter_under_hub: str, hub_demo: DemoRun) -> None:
    base, token = jupyter_under_hub.split("|")
    with httpx.Client(timeout=30, trust_env=False) as client:
        root = client.get(f"{base}/prefect/", params={"token": token}, headers={"Accept": "text/html"})
        assert root.status_code == 307 and f"{BASE}prefect/v2/" in root.headers["location"]
        settings = client.get(f"{base}/prefect/ui-settings", params={"token": token},
                              headers={"Accept-Encoding": "gzip"})
        assert settings.json()["auth"] is None and settings.json()["api_url"] == f"{BASE}prefect-api/api"
        page = client.get(f"{base}/prefect/v2/", params={"token": token}, headers={"Accept": "text/html"})
        assert f'src="{BASE}prefect/v2/assets/' in page.text
        flows = client.post(f"{base}/prefect-api/api/flows/filter", params={"token": token}, json={})
        assert flows.status_code == 200, "the proxy did not add the credential"
        anonymous = httpx.post(f"{base}/prefect-api/api/flows/filter", json={}, timeout=30)
        assert anonymous.status_code == 403, "the proxy must ask for Jupyter's own login first"
        for response in (root, settings, page, flows):
            assert hub_demo.auth_string not in response.text


@pytest.mark.server
@pytest.mark.browser
def test_the_ui_opens_without_a_login_page(jupyter_under_hub: str) -> None:
    # Playwright is a declared test dependency: imported unconditionally, so missing it fails.
    from playwright.sync_api import sync_playwright

    if not Path("/usr/bin/chromium").exists():  # an apt package, not a Python dependency
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium); "
                    "./scripts/test installs it when run as root")

    base, token = jupyter_under_hub.split("|")
    api_statuses: list[int] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("response", lambda r: api_statuses.append(r.status) if "/prefect-api/api/" in r.url else None)
            page.goto(f"{base}/prefect/?token={token}", timeout=90_000)
            page.wait_for_function("document.title.startsWith('Dashboard')", timeout=90_000)
            assert "/login" not in page.url
        finally:
            browser.close()
    assert api_statuses and all(s < 400 for s in api_statuses), api_statuses
