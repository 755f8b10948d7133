"""docker-compose.yml checked by docker-compose itself (no Docker engine needed for `config`), and
the Asterisk image's render step run here with the same environment the container gets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.stack import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
SECRETS = {"VECHE_AMI_SECRET": "0123abcd" * 4, "POSTGRES_PASSWORD": "pg-secret-1", "VECHE_SECRET_KEY": "f" * 64,
           "VECHE_AGI_SECRET": "a1" * 32}

# The Asterisk image has Debian's python3 + python3-jinja2 only: rendering must need nothing else.
ONLY_STDLIB_AND_JINJA2 = """
import importlib.abc, runpy, sys
class OnlyStdlibAndJinja2(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top not in sys.stdlib_module_names and top not in ("engine", "jinja2", "markupsafe"):
            raise ImportError(f"{name} is not in the Asterisk image")
sys.meta_path.insert(0, OnlyStdlibAndJinja2())
sys.argv[0] = "engine"
runpy.run_module("engine", run_name="__main__", alter_sys=True)
"""

# ./veche test installs docker-compose; a bare `pytest` on a host without it skips this module
# rather than fail on a tool the engine itself never needs
pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                reason="docker-compose (Debian package) is not installed")


def compose_config(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VECHE_", "POSTGRES_"))}
    base.pop("DATABASE_URL", None)
    base.pop("ASTERISK_AMI_URL", None)
    # run outside the checkout so a developer's .env file cannot supply the secrets
    return subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "--project-directory",
                           str(PROJECT_ROOT), "config"], env={**base, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid_and_has_the_whole_topology(tmp_path: Path) -> None:
    result = compose_config(SECRETS, tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"postgres", "kamailio", "asterisk1", "asterisk2", "engine", "engine2"}

    assert services["postgres"]["image"] == "postgres:15"
    assert any(v.startswith("postgres-data:/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert all(p.startswith("127.0.0.1:") for p in services["postgres"]["ports"])

    for name in ("asterisk1", "engine", "kamailio"):
        dockerfile = Path(services[name]["build"]["context"]) / services[name]["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
    asterisk_dockerfile = (PROJECT_ROOT / "docker/asterisk/Dockerfile").read_text()
    assert "FROM debian:sid" in asterisk_dockerfile
    for package in ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-gsm", "asterisk-core-sounds-en",
                    "asterisk-core-sounds-ru-gsm", "asterisk-core-sounds-ru"):
        assert f" {package} " in asterisk_dockerfile
    assert "FROM python:3.11-slim" in (PROJECT_ROOT / "docker/engine/Dockerfile").read_text()
    for node in ("asterisk1", "asterisk2"):
        volumes = " ".join(services[node]["volumes"])
        assert "/var/lib/asterisk/log" in volumes and "/var/lib/asterisk/spool" in volumes
    assert services["asterisk1"]["environment"]["VECHE_MEDIA_NODE"] == "ast1"
    assert services["asterisk2"]["environment"]["VECHE_MEDIA_NODE"] == "ast2"

    engine_env = services["engine"]["environment"]
    assert engine_env["ASTERISK_AMI_URL"] == f"ami://veche:{SECRETS['VECHE_AMI_SECRET']}@127.0.0.1:5038"
    assert engine_env["DATABASE_URL"].startswith(f"postgresql://veche:{SECRETS['POSTGRES_PASSWORD']}@")
    assert services["asterisk1"]["environment"]["VECHE_AMI_SECRET"] == SECRETS["VECHE_AMI_SECRET"]
    assert set(services["engine"]["depends_on"]) == {"postgres", "asterisk1", "asterisk2", "kamailio"}
    for name in ("engine", "engine2"):
        assert services[name]["environment"]["VECHE_NODE_HOSTS"] == "127.0.0.11,127.0.0.12"
    assert services["engine"]["environment"]["VECHE_WEB_PORT"] != services["engine2"]["environment"]["VECHE_WEB_PORT"]
    assert services["engine"]["environment"]["VECHE_AGI_PORT"] != services["engine2"]["environment"]["VECHE_AGI_PORT"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_run_without_each_secret(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    result = compose_config(env, tmp_path)
    assert result.returncode != 0
    assert missing in result.stderr


def _render_in_image(service_env: dict[str, object], tmp_path: Path, *argv: str) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **{k: str(v) for k, v in service_env.items()}}
    rendered = subprocess.run([sys.executable, "-c", ONLY_STDLIB_AND_JINJA2, *argv],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr


def test_asterisk_image_render_step_produces_a_complete_config(tmp_path: Path) -> None:
    """What docker/asterisk/entrypoint.sh runs for node ast2, with the environment docker-compose
    gives it: the node's own address, its trunk to Kamailio (the only source of dial-ins)."""
    result = compose_config(SECRETS | {"VECHE_SIP_HOST": "192.0.2.10", "VECHE_TRUNK_TARGET": "192.0.2.1:5060"},
                            tmp_path)
    asterisk_env = yaml.safe_load(result.stdout)["services"]["asterisk2"]["environment"]
    dest = tmp_path / "etc"
    _render_in_image(asterisk_env, tmp_path, "asterisk-config", "render", str(dest),
                     "--node", asterisk_env["VECHE_MEDIA_NODE"])
    assert {"asterisk.conf", "manager.conf", "pjsip.conf", "extensions.conf", "confbridge.conf",
            "modules.conf"} <= {p.name for p in dest.iterdir()}
    manager = (dest / "manager.conf").read_text()
    assert f"secret = {SECRETS['VECHE_AMI_SECRET']}" in manager and "bindaddr = 127.0.0.12" in manager
    pjsip = (dest / "pjsip.conf").read_text()
    assert "bind = 127.0.0.12:5060" in pjsip and "contact = sip:192.0.2.10:5060" in pjsip
    assert "match = 192.0.2.10" in pjsip and "media_address = 127.0.0.12" in pjsip
    extensions = (dest / "extensions.conf").read_text()
    assert "agi://127.0.0.1:4573" in extensions and f"VECHE_AGI_SECRET = {SECRETS['VECHE_AGI_SECRET']}" in extensions
    entrypoint = (PROJECT_ROOT / "docker/asterisk/entrypoint.sh").read_text()
    assert "python3 -m engine asterisk-config render" in entrypoint and "--node" in entrypoint


def test_kamailio_image_render_step_fronts_both_nodes(tmp_path: Path) -> None:
    """What docker/kamailio/entrypoint.sh runs: Kamailio at the front door, both nodes in its
    dispatcher list, the carrier as the one way out."""
    result = compose_config(SECRETS | {"VECHE_SIP_HOST": "192.0.2.10", "VECHE_TRUNK_TARGET": "192.0.2.1:5060"},
                            tmp_path)
    kamailio_env = yaml.safe_load(result.stdout)["services"]["kamailio"]["environment"]
    dest = tmp_path / "kamailio"
    _render_in_image(kamailio_env, tmp_path, "kamailio-config", "render", str(dest))
    config = (dest / "kamailio.cfg").read_text()
    assert "listen = udp:192.0.2.10:5060" in config and '$du = "sip:192.0.2.1:5060"' in config
    assert (dest / "dispatcher.list").read_text().split("\n")[1:3] == ["1 sip:127.0.0.11:5060 0 0",
                                                                       "1 sip:127.0.0.12:5060 0 0"]
    if shutil.which("kamailio"):
        checked = subprocess.run(["kamailio", "-c", "-f", str(dest / "kamailio.cfg")], capture_output=True,
                                 text=True, timeout=60)
        assert checked.returncode == 0, checked.stderr[-2000:]
    assert "kamailio-config render" in (PROJECT_ROOT / "docker/kamailio/entrypoint.sh").read_text()


# systemd-analyze comes with systemd, which a container or a non-systemd host lacks; nothing installs it
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_example_is_valid() -> None:
    unit = PROJECT_ROOT / "deploy" / "veche.service"
    assert "ExecStart=/opt/veche/.venv/bin/python -m engine run" in unit.read_text()
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "is not executable" not in line]  # /opt/veche is not installed here
    assert problems == []
