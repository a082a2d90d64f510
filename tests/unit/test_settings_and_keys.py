"""The one settings object, and the key check that fails closed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessions.keys import KeyCheck, KeyRing, fingerprint
from sessions.settings import (
    DEFAULT_MAX_BODY_BYTES,
    REQUIRED_SETTINGS,
    Setting,
    Settings,
    SettingsError,
    StorageConnection,
    with_local_settings,
)


def test_defaults_follow_the_design() -> None:
    settings = Settings.from_env({"SESSIONS_STORAGE": "UseDevelopmentStorage=true"})
    assert settings.sessions_table == "ChargingSessions"
    assert settings.rejected_table == "RejectedSessions"
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 16 * 1024 * 1024
    assert settings.api_keys == ()
    assert settings.storage == StorageConnection(connection_string="UseDevelopmentStorage=true")


REQUIRED: dict[str, str] = {
    Setting.API_KEYS: "k",
    Setting.STORAGE: "UseDevelopmentStorage=true",
    Setting.PUSH_QUEUE: "pushes-to-store",
    Setting.HOST_STORAGE: "UseDevelopmentStorage=true",
}
CONFIGURATION_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_required_settings_alone_make_a_receiver_whose_background_can_run() -> None:
    assert set(REQUIRED) == set(REQUIRED_SETTINGS)
    settings = Settings.from_env(REQUIRED)
    assert settings.api_keys == ("k",) and settings.push_queue == "pushes-to-store"
    assert settings.background_problem() is None


@pytest.mark.parametrize("missing", [Setting.PUSH_QUEUE, Setting.HOST_STORAGE])
def test_without_what_the_background_needs_the_settings_say_which(missing: Setting) -> None:
    settings = Settings.from_env({name: value for name, value in REQUIRED.items() if name != missing})
    problem = settings.background_problem()
    assert problem is not None and problem.startswith(f"{missing.value} is not set")


@pytest.mark.parametrize(
    "host_storage",
    [
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true"},
        {"AzureWebJobsStorage__accountName": "account"},
        {"AzureWebJobsStorage__blobServiceUri": "https://account.blob.core.windows.net"},
    ],
)
def test_the_hosts_storage_counts_in_either_form(host_storage: dict[str, str]) -> None:
    assert Settings.from_env(host_storage).host_storage
    assert not Settings.from_env({"AzureWebJobsStorage": " "}).host_storage


def test_the_configuration_guide_calls_exactly_the_required_settings_required() -> None:
    rows = [
        line
        for line in CONFIGURATION_GUIDE.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    ]
    required = {line.split("`")[1] for line in rows if "| required |" in line or "*(required" in line}
    assert required == {setting.value for setting in REQUIRED_SETTINGS}


def test_keys_are_comma_separated_trimmed_and_deduplicated() -> None:
    settings = Settings.from_env({"CHARGEPILOT_API_KEYS": " old-key , new-key,,old-key "})
    assert settings.api_keys == ("old-key", "new-key")


def test_an_unresolved_key_vault_reference_is_no_key_at_all() -> None:
    reference = "@Microsoft.KeyVault(VaultName=kv-x;SecretName=chargepilot-api-keys)"
    settings = Settings.from_env({"CHARGEPILOT_API_KEYS": reference})
    assert settings.api_keys == () and settings.api_keys_unresolved
    assert KeyRing(settings.api_keys).check(reference).check is KeyCheck.NOT_CONFIGURED


def test_identity_based_storage_needs_no_account_key() -> None:
    settings = Settings.from_env(
        {
            "SESSIONS_STORAGE__tableServiceUri": "https://acct.table.core.windows.net/",
            "SESSIONS_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
            "SESSIONS_STORAGE__credential": "managedidentity",
            "SESSIONS_STORAGE__clientId": "00000000-0000-0000-0000-000000000001",
        }
    )
    assert settings.storage == StorageConnection(
        table_service_uri="https://acct.table.core.windows.net",
        blob_service_uri="https://acct.blob.core.windows.net",
        client_id="00000000-0000-0000-0000-000000000001",
    )
    assert settings.storage.uses_identity


def test_missing_storage_is_reported_when_storage_is_needed() -> None:
    settings = Settings.from_env({})
    with pytest.raises(SettingsError, match="SESSIONS_STORAGE"):
        settings.require_storage()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES"),
        ({"SESSIONS_TABLE": "bad-name"}, "SESSIONS_TABLE"),
        ({"REJECTED_TABLE": "1abc"}, "REJECTED_TABLE"),
        ({"SESSIONS_TABLE": "Same", "REJECTED_TABLE": "same"}, "different tables"),
        ({"PUSHES_TABLE": "SessionIndex"}, "different tables"),
        ({"RAW_ARCHIVE_CONTAINER": "Raw_Pushes"}, "RAW_ARCHIVE_CONTAINER"),
        ({"PUSH_QUEUE": "pushes--to-store"}, "PUSH_QUEUE"),
        ({"PUSH_QUEUE": "q" * 57}, "PUSH_QUEUE"),
        ({"MAX_PUSH_SESSIONS": "1.5"}, "MAX_PUSH_SESSIONS"),
        ({"PUSH_DEADLINE_SECONDS": "soon"}, "PUSH_DEADLINE_SECONDS"),
        ({"PUSH_DEADLINE_SECONDS": "nan"}, "PUSH_DEADLINE_SECONDS"),
        ({"SESSION_MAX_ENERGY_KWH": "-1"}, "SESSION_MAX_ENERGY_KWH"),
        ({"SESSION_MAX_DAYS": "inf"}, "SESSION_MAX_DAYS"),
        ({"SESSION_EARLIEST_START": "1.1.2010"}, "SESSION_EARLIEST_START"),
        ({"SESSIONS_STORAGE__tableServiceUri": "http://plain"}, "https"),
    ],
)
def test_unusable_settings_are_named_in_the_error(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_the_plausibility_limits_and_push_limits_are_read_with_their_units() -> None:
    settings = Settings.from_env(
        {
            "SESSION_MAX_ENERGY_KWH": "1200.5",
            "SESSION_MAX_POWER_KW": "350",
            "SESSION_MAX_DAYS": "14",
            "SESSION_MAX_FUTURE_HOURS": "2",
            "SESSION_EARLIEST_START": "2015-06-01",
            "PUSH_DEADLINE_SECONDS": "7.5",
            "MAX_PUSH_SESSIONS": "5000",
        }
    )
    assert settings.limits.max_energy_kwh == 1200.5 and settings.limits.max_power_kw == 350
    assert settings.limits.max_days == 14 and settings.limits.max_future_hours == 2
    assert settings.limits.earliest_start.isoformat() == "2015-06-01"
    assert settings.push_deadline_seconds == 7.5 and settings.max_push_sessions == 5000


def test_secrets_do_not_appear_in_the_settings_repr() -> None:
    settings = Settings.from_env(
        {"CHARGEPILOT_API_KEYS": "super-secret-key", "SESSIONS_STORAGE": "AccountName=a;AccountKey=c2VjcmV0"}
    )
    assert "super-secret-key" not in repr(settings)
    assert "c2VjcmV0" not in repr(settings)
    assert settings.storage is not None and "c2VjcmV0" not in settings.storage.describe()


def test_local_settings_fill_in_what_the_environment_lacks(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"SESSIONS_TABLE": "FromFile", "REJECTED_TABLE": "FromFile2"}}))
    merged = with_local_settings({"SESSIONS_TABLE": "FromEnv"}, path)
    assert merged["SESSIONS_TABLE"] == "FromEnv"
    assert merged["REJECTED_TABLE"] == "FromFile2"
    assert with_local_settings({"A": "1"}, tmp_path / "absent.json") == {"A": "1"}


def test_a_broken_local_settings_file_is_an_error_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text("{not json")
    with pytest.raises(SettingsError, match=r"local\.settings\.json"):
        with_local_settings({}, path)


def test_no_configured_key_refuses_everything() -> None:
    ring = KeyRing(())
    assert not ring.configured
    assert ring.check("anything").check is KeyCheck.NOT_CONFIGURED
    assert ring.check(None).check is KeyCheck.NOT_CONFIGURED
    assert ring.check("").check is KeyCheck.NOT_CONFIGURED


def test_old_and_new_key_both_work_during_a_rotation() -> None:
    ring = KeyRing(("old-key", "new-key"))
    assert ring.check("old-key").check is KeyCheck.ACCEPTED
    assert ring.check("new-key").check is KeyCheck.ACCEPTED


@pytest.mark.parametrize(
    "presented", ["old-ke", "old-key2", "OLD-KEY", "old-key,new-key", "new-key, old-key"]
)
def test_anything_but_a_configured_key_is_wrong(presented: str) -> None:
    assert KeyRing(("old-key", "new-key")).check(presented).check is KeyCheck.WRONG


@pytest.mark.parametrize("presented", [None, "", "   "])
def test_an_absent_or_blank_key_is_missing(presented: str | None) -> None:
    assert KeyRing(("old-key",)).check(presented).check is KeyCheck.MISSING


def test_an_accepted_key_says_which_configured_key_it_was_by_position_and_fingerprint() -> None:
    ring = KeyRing(("old-key", "new-key"))
    old, new = ring.check("old-key"), ring.check(" new-key ")
    assert (old.slot, new.slot) == (1, 2)
    assert old.fingerprint == fingerprint("old-key") and new.fingerprint == fingerprint("new-key")
    assert old.fingerprint != new.fingerprint and len(old.fingerprint or "") == 8
    assert "old-key" not in (old.fingerprint or "") and ring.check("wrong").slot is None


def test_the_key_ring_does_not_show_its_keys() -> None:
    assert "old-key" not in repr(KeyRing(("old-key",)))
