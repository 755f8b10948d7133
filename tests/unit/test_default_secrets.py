"""The engine refuses development secrets on a real PBX or in production; `run` generates its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import DEFAULT_AMI_SECRET, Settings
from engine.domain.errors import ConfigError
from engine.domain.passwords import is_common


def test_external_pbx_with_default_secret_is_refused() -> None:
    settings = Settings.from_env({"ASTERISK_AMI_URL": f"ami://veche:{DEFAULT_AMI_SECRET}@10.0.0.5:5038"})
    with pytest.raises(ConfigError, match="default"):
        settings.refuse_default_secrets()
    settings.with_(test_mode=True).refuse_default_secrets()  # tests may


def test_production_needs_a_secret_key_and_own_ami_secret() -> None:
    with pytest.raises(ConfigError, match="VECHE_AMI_SECRET"):
        Settings.from_env({"VECHE_PRODUCTION": "1"}).refuse_default_secrets()
    with pytest.raises(ConfigError, match="VECHE_SECRET_KEY"):
        Settings.from_env({"VECHE_PRODUCTION": "1", "VECHE_AMI_SECRET": "x" * 40}).refuse_default_secrets()
    with pytest.raises(ConfigError, match="VECHE_AGI_SECRET"):
        Settings.from_env({"VECHE_PRODUCTION": "1", "VECHE_AMI_SECRET": "x" * 40,
                           "VECHE_SECRET_KEY": "f" * 64}).refuse_default_secrets()
    Settings.from_env({"VECHE_PRODUCTION": "1", "VECHE_AMI_SECRET": "x" * 40, "VECHE_SECRET_KEY": "f" * 64,
                       "VECHE_AGI_SECRET": "a" * 64}).refuse_default_secrets()


def test_external_pbx_needs_an_agi_secret() -> None:
    external = {"ASTERISK_AMI_URL": "ami://veche:" + "x" * 40 + "@10.0.0.5:5038"}
    with pytest.raises(ConfigError, match="VECHE_AGI_SECRET"):
        Settings.from_env(external).refuse_default_secrets()
    Settings.from_env({**external, "VECHE_AGI_SECRET": "a" * 64}).refuse_default_secrets()


def test_dev_run_generates_and_keeps_secrets(tmp_path: Path) -> None:
    settings = Settings.from_env({"VECHE_RUN_DIR": str(tmp_path)})
    settings.refuse_default_secrets()  # a local development Asterisk: allowed, then replaced
    first = settings.with_generated_secrets()
    assert first.ami.secret != DEFAULT_AMI_SECRET and len(first.secret_key) == 64
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    again = Settings.from_env({"VECHE_RUN_DIR": str(tmp_path)}).with_generated_secrets()
    assert (again.ami.secret, again.secret_key) == (first.ami.secret, first.secret_key)
    assert len(first.agi_secret) == 64 and again.agi_secret == first.agi_secret


def test_ami_permit_setting() -> None:
    assert Settings.from_env({"VECHE_AMI_PERMIT": "10.1.2.3"}).ami_permit == "10.1.2.3"
    with pytest.raises(ConfigError, match="VECHE_AMI_PERMIT"):
        Settings.from_env({"VECHE_AMI_PERMIT": "0.0.0.0/0"})


def test_common_passwords_are_known() -> None:
    assert is_common("Password1") and is_common("qwerty123") and not is_common("portal-pass-2026")
