"""The harnesses' one way to get Debian packages: ``prefect_nbauth.testing._apt.apt_install``.

Installed with apt-get as root; otherwise an error that says what to install. A fake
``apt-get`` first on PATH records what would run: nothing is installed on this machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from prefect_nbauth.testing._apt import apt_install, missing_packages


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``apt-get`` first on PATH that records its arguments (and exits with $FAKE_APT_STATUS)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "apt-calls"
    script = bin_dir / "apt-get"
    script.write_text(f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {record}\nexit "${{FAKE_APT_STATUS:-0}}"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return record


def test_apt_install_installs_the_packages_as_root(fake_apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    apt_install([], "nothing")
    assert not fake_apt.exists()
    apt_install(["nginx", "libnginx-mod-http-js"], "the gateway")
    assert fake_apt.read_text().splitlines() == [
        "noninteractive update -qq", "noninteractive install -y -qq nginx libnginx-mod-http-js"]

    monkeypatch.setenv("FAKE_APT_STATUS", "100")
    with pytest.raises(RuntimeError, match=r"`apt-get update -qq` failed with status 100 .* so the gateway "
                                           r"cannot have nginx"):
        apt_install(["nginx"], "the gateway")


def test_apt_install_says_what_to_install_when_it_cannot(fake_apt: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RuntimeError) as not_root:
        apt_install(["postgresql", "redis-server"], "the scaled stack")
    assert str(not_root.value) == (
        "the scaled stack needs the Debian packages postgresql redis-server, which are missing: install them "
        "as root (`sudo apt-get install postgresql redis-server`), or run this as root to have it done")
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get at all
    with pytest.raises(RuntimeError, match="this machine has no apt-get: install them"):
        apt_install(["postgresql"], "the scaled stack")
    assert not fake_apt.exists()
    assert missing_packages({"sh": "/bin/sh", "nothing": tmp_path / "absent"}) == ["nothing"]


@pytest.mark.parametrize("harness", ["stack", "idp", "hub"])
def test_every_harness_installs_through_the_one_function(harness: str, fake_apt: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_nbauth.testing.hub import _install as hub_install
    from prefect_nbauth.testing.idp import _install as idp_install
    from prefect_nbauth.testing.stack import _system

    absent = str(tmp_path / "absent")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(_system, "APT_PACKAGES", {"redis-server": absent})
    monkeypatch.setattr(idp_install, "_NGINX_PACKAGES", {"libnginx-mod-stream-js": absent})
    monkeypatch.setattr(hub_install, "BASE_PYTHON", absent)
    ensure, needs = {"stack": (_system.ensure_system_packages, "redis-server"),
                     "idp": (idp_install.ensure_nginx, "libnginx-mod-stream-js"),
                     "hub": (hub_install._ensure_debian_venv, "python3 python3-venv")}[harness]
    with pytest.raises(RuntimeError, match=re.escape(f"(`sudo apt-get install {needs}`)")):
        ensure()
    assert not fake_apt.exists()
