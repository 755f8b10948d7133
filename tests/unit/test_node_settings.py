"""Several media nodes from the environment: ids, hosts and ports of each node, the per-node
Asterisk settings (own address, trunk to Kamailio) and the rendered Kamailio configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Settings
from engine.domain.errors import ConfigError
from engine.stack import node_settings, render_kamailio_config


def test_one_node_is_the_settings_own_asterisk() -> None:
    settings = Settings.from_env({})
    (only,) = settings.media_nodes
    assert (only.node_id, only.sip_address, only.ami.host) == ("ast1", "127.0.0.1:5060", "127.0.0.1")
    assert not settings.several_nodes and node_settings(settings, only) is settings


def test_two_local_nodes_get_their_own_loopback_addresses() -> None:
    settings = Settings.from_env({"VECHE_NODES": "2", "VECHE_AMI_SECRET": "s" * 32, "VECHE_NODE_CAPACITY": "120"})
    nodes = settings.media_nodes
    assert [(n.node_id, n.sip_address, n.ami.host, n.ami.port, n.capacity) for n in nodes] == [
        ("ast1", "127.0.0.11:5060", "127.0.0.11", 5038, 120), ("ast2", "127.0.0.12:5060", "127.0.0.12", 5038, 120)]
    assert nodes[1].ami_url == "ami://veche@127.0.0.12:5038"  # never the secret
    second = node_settings(settings, nodes[1])
    assert (second.node_id, second.sip_host, second.ami.host) == ("ast2", "127.0.0.12", "127.0.0.12")
    assert second.trunk_target == "127.0.0.1:5060"  # Kamailio, the front door


def test_node_hosts_name_the_nodes() -> None:
    settings = Settings.from_env({"VECHE_NODE_HOSTS": "asterisk1, asterisk2,asterisk3"})
    assert settings.node_count == 3
    assert [n.sip_host for n in settings.media_nodes] == ["asterisk1", "asterisk2", "asterisk3"]


@pytest.mark.parametrize("env", [{"VECHE_NODES": "3", "VECHE_NODE_HOSTS": "a,b"},
                                 {"VECHE_NODES": "2", "VECHE_NODE_ID": "main"},
                                 {"VECHE_NODES": "0"}])
def test_inconsistent_node_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_kamailio_fronts_every_node_and_relays_to_the_carrier(tmp_path: Path) -> None:
    settings = Settings.from_env({"VECHE_NODES": "2", "VECHE_SIP_PORT": "5099", "VECHE_TRUNK_TARGET": "192.0.2.1:5060"})
    dest = render_kamailio_config(settings, tmp_path)
    config = (dest / "kamailio.cfg").read_text()
    assert "listen = udp:127.0.0.1:5099" in config and '$du = "sip:192.0.2.1:5060"' in config
    assert f'"list_file", "{dest / "dispatcher.list"}"' in config
    lines = [line for line in (dest / "dispatcher.list").read_text().splitlines() if not line.startswith("#")]
    assert lines == ["1 sip:127.0.0.11:5099 0 0", "1 sip:127.0.0.12:5099 0 0"]
