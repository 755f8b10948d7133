"""The two pure rules of the portal's edge: which redirect targets are local paths, and which
X-Forwarded-For hop is the client (through a real server in tests/integration/test_web_edge.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from engine.config import Settings
from engine.domain.errors import ConfigError
from web.security import DEFAULT_LANDING, forwarded_client, safe_redirect


@pytest.mark.parametrize("target", [
    "/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "//evil.example", "/\\evil.example",
    "\\/evil.example", "https://evil.example", "HTTPS://evil.example", "http:evil.example", "javascript:alert(1)",
    " /planning", "/\x0b/evil.example", "/\u2028/evil.example", "/\u200b/evil.example", "/\u202e/x", "",
    "planning", "///evil.example", "/" + "a" * 3000, "/%2F/evil.example",  # yarl decodes %2F to //
])
def test_off_site_or_odd_targets_fall_back(target: str) -> None:
    assert safe_redirect(target) == DEFAULT_LANDING


@pytest.mark.parametrize("target", ["/planning", "/conferences/12/console", "/history?state=ended&q=a%20b",
                                    "/settings#contacts"])
def test_local_paths_are_kept(target: str) -> None:
    assert safe_redirect(target) == target


@given(st.text(max_size=60))
def test_whatever_comes_in_the_result_stays_on_this_site(text: str) -> None:
    for candidate in (text, "/" + text):
        result = safe_redirect(candidate)
        resolved = URL("https://portal.example/login").join(URL(result))
        assert resolved.host == "portal.example", (candidate, result)


TRUSTED = ("10.0.0.0/8", "192.168.1.5/32")


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert forwarded_client("203.0.113.9", ["198.51.100.1"], TRUSTED) == "203.0.113.9"
    assert forwarded_client("203.0.113.9", ["198.51.100.1"], ()) == "203.0.113.9"


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    assert forwarded_client("10.1.1.1", ["198.51.100.1, 203.0.113.7"], TRUSTED) == "203.0.113.7"
    assert forwarded_client("10.1.1.1", ["198.51.100.1", "203.0.113.7, 192.168.1.5"], TRUSTED) == "203.0.113.7"
    assert forwarded_client("10.1.1.1", ["garbage, 203.0.113.7"], TRUSTED) == "203.0.113.7"
    assert forwarded_client("10.1.1.1", ["[2001:db8::1]:443"], TRUSTED) == "2001:db8::1"
    assert forwarded_client("::ffff:10.1.1.1", ["203.0.113.7:5555"], TRUSTED) == "203.0.113.7"


def test_a_malformed_or_missing_hop_leaves_the_last_trusted_one() -> None:
    assert forwarded_client("10.1.1.1", [], TRUSTED) == "10.1.1.1"
    assert forwarded_client("10.1.1.1", ["not-an-address"], TRUSTED) == "10.1.1.1"
    assert forwarded_client("10.1.1.1", ["203.0.113.7, bad"], TRUSTED) == "10.1.1.1"
    assert forwarded_client("10.1.1.1", ["10.2.2.2"], TRUSTED) == "10.2.2.2"


def test_trusted_proxies_setting_is_checked() -> None:
    settings = Settings.from_env({"VECHE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"})
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    assert Settings.from_env({}).trusted_proxies == ()
    with pytest.raises(ConfigError, match="VECHE_TRUSTED_PROXIES"):
        Settings.from_env({"VECHE_TRUSTED_PROXIES": "proxy.example"})
