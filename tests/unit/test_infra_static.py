"""The Bicep in infra/, read statically: it parses, it sets exactly the settings the code reads,
and it keeps the promises a security reviewer signs off (no keys, no secrets in files, TLS 1.2).

Nothing here reaches Azure or runs a program: tests/infra runs checkov.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sessions.settings import APP_SETTINGS, STORAGE_IDENTITY_SUFFIXES, Setting, Settings
from tests.helpers import PROJECT
from tests.helpers.bicep import (
    BICEP_FILES,
    INFRA,
    MAIN,
    PARAMETER_FILES,
    function_app_settings,
    only,
    parsed,
    resources_of_type,
    sample_values,
    secure_parameters,
)

DEPLOY_DOC = PROJECT / "README.md"  # its "Deploy to Azure" section

# Settings that the Functions host and the Application Insights agent read in Azure (not our code).
# Host storage is blobs only: with HTTP triggers alone the host needs no queue or table service.
HOST_SETTINGS_IN_AZURE = frozenset(
    {
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    }
)
# Settings that Core Tools needs locally; on Flex Consumption the runtime is in functionAppConfig.
HOST_SETTINGS_LOCAL = frozenset({"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"})
STORAGE_IDENTITY_SETTINGS = frozenset(f"{Setting.STORAGE}__{suffix}" for suffix in STORAGE_IDENTITY_SUFFIXES)

# --- parsing ----------------------------------------------------------------------------


def test_infra_has_main_and_its_modules() -> None:
    assert MAIN in BICEP_FILES
    assert len(BICEP_FILES) > 1, "main.bicep should be split into modules under infra/modules/"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(INFRA)))
def test_bicep_file_parses(path: Path) -> None:
    tree = parsed(path)
    assert tree.get("resources") or tree.get("outputs"), f"{path.name} parsed to nothing"


def test_no_registry_modules() -> None:
    """Registry modules cannot be fetched here, and checkov cannot see inside them."""
    for path in BICEP_FILES:
        assert "br/public:" not in path.read_text(encoding="utf-8"), path.name
        assert "br:" not in path.read_text(encoding="utf-8"), path.name


# --- the settings the code reads --------------------------------------------------------


def test_function_app_sets_exactly_the_settings_the_code_reads() -> None:
    """Every setting the code reads is set; nothing else is, but the host's own settings.

    In particular none of the settings Flex Consumption rejects (FUNCTIONS_WORKER_RUNTIME,
    FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENTSHARE...).
    """
    expected = set(APP_SETTINGS) | STORAGE_IDENTITY_SETTINGS | HOST_SETTINGS_IN_AZURE
    assert set(function_app_settings()) == expected


def test_storage_is_reached_with_the_managed_identity_not_a_connection_string() -> None:
    settings = function_app_settings()
    assert Setting.STORAGE not in settings
    assert "AzureWebJobsStorage" not in settings
    assert settings[f"{Setting.STORAGE}__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"


def test_no_account_key_anywhere_in_the_templates() -> None:
    for name, value in function_app_settings().items():
        rendered = json.dumps(value)
        for forbidden in ("AccountKey", "listKeys", "list_keys", "SharedAccessSignature"):
            assert forbidden not in rendered, f"{name} uses {forbidden}"
    for path in BICEP_FILES:
        text = path.read_text(encoding="utf-8")
        assert "listKeys(" not in text, path.name
        assert "AccountKey=" not in text, path.name


def test_api_keys_setting_is_a_key_vault_reference() -> None:
    value = function_app_settings()[Setting.API_KEYS]
    assert isinstance(value, str)
    assert value.startswith("@Microsoft.KeyVault(")
    site = only("Microsoft.Web/sites")
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"


def test_sample_settings_list_every_setting_the_code_reads_and_nothing_else() -> None:
    values = sample_values()
    code_settings = set(APP_SETTINGS) | {Setting.STORAGE}
    assert code_settings <= set(values)
    assert set(values) - code_settings <= HOST_SETTINGS_LOCAL


SETTINGS_WITH_DEFAULTS = (
    "sessions_table",
    "rejected_table",
    "max_body_bytes",
    "raw_archive_enabled",
    "raw_archive_container",
)


def test_sample_settings_hold_the_code_defaults() -> None:
    """Only the key and the storage connection differ from what the code assumes when unset."""
    from_sample = Settings.from_env(sample_values())
    defaults = Settings()
    for field in SETTINGS_WITH_DEFAULTS:
        assert getattr(from_sample, field) == getattr(defaults, field), field


def test_sample_api_key_is_an_obvious_placeholder() -> None:
    assert "change-me" in sample_values()[Setting.API_KEYS]


# --- what a security reviewer checks that checkov does not ------------------------------


def test_storage_account_refuses_keys_anonymous_access_and_old_tls() -> None:
    account = only("Microsoft.Storage/storageAccounts")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["supportsHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"


def test_deleted_or_overwritten_blobs_can_be_recovered() -> None:
    blobs = only("Microsoft.Storage/storageAccounts/blobServices")["properties"]
    assert blobs["deleteRetentionPolicy"]["enabled"] is True
    assert blobs["containerDeleteRetentionPolicy"]["enabled"] is True
    assert blobs["isVersioningEnabled"] is True


def test_key_vault_uses_rbac_with_soft_delete_and_purge_protection() -> None:
    vault = only("Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True


def test_api_keys_secret_has_expiry_and_content_type() -> None:
    """Backs the checkov skips on the conditional secret (checkov cannot read its body)."""
    secret = only("Microsoft.KeyVault/vaults/secrets")["properties"]
    assert secret["attributes"]["exp"]
    assert secret["contentType"]


def test_function_app_is_https_only_with_tls_1_2_and_no_ftp_or_basic_auth() -> None:
    site = only("Microsoft.Web/sites")["properties"]
    assert site["httpsOnly"] is True
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["siteConfig"]["ftpsState"] == "Disabled"
    policies = {
        policy["name"]: policy["properties"]["allow"]
        for policy in resources_of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert policies == {"ftp": False, "scm": False}


def test_function_app_runs_python_3_11_on_flex_consumption() -> None:
    plan = only("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    config = only("Microsoft.Web/sites")["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"


def test_application_insights_accepts_only_entra_authenticated_telemetry() -> None:
    assert only("Microsoft.Insights/components")["properties"]["DisableLocalAuth"] is True


def test_identity_gets_no_queue_management_or_owner_role() -> None:
    rbac = (INFRA / "modules" / "rbac.bicep").read_text(encoding="utf-8")
    for role, guid in {
        "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
        "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Storage Account Contributor": "17d1049b-9a84-46fb-8f53-869881c3d3ab",
    }.items():
        assert guid not in rbac, f"{role} is assigned"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(INFRA)))
def test_secure_parameters_have_no_default(path: Path) -> None:
    for name, parameter in secure_parameters(path).items():
        assert parameter["default"] is None, f"{path.name}: @secure() {name} has a default"


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda path: path.name)
def test_parameter_files_hold_no_secret_and_only_declared_parameters(path: Path) -> None:
    values = json.loads(path.read_text(encoding="utf-8"))["parameters"]
    declared = parsed(MAIN)["parameters"]
    assert set(values) <= set(declared), f"{path.name} sets undeclared parameters"
    assert not set(values) & set(secure_parameters(MAIN)), f"{path.name} holds a @secure() parameter"


def test_there_is_a_dev_and_a_prod_parameter_file() -> None:
    names = {path.name for path in PARAMETER_FILES}
    assert {"main.parameters.json", "main.dev.parameters.json", "main.prod.parameters.json"} <= names


# --- outputs and the deploy guide -------------------------------------------------------


def test_outputs_give_the_endpoint_for_chargepilot() -> None:
    outputs = parsed(MAIN)["outputs"]
    assert {"FUNCTION_APP_NAME", "KEY_VAULT_NAME", "SESSIONS_ENDPOINT_URL"} <= set(outputs)
    assert outputs["SESSIONS_ENDPOINT_URL"]["value"].endswith("/api/sessions")


def test_deploy_guide_names_only_real_parameters_and_every_output() -> None:
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    main = parsed(MAIN)
    for output in main["outputs"]:
        assert output in guide, f"README.md does not mention output {output}"
    for parameter in re.findall(r"\b([a-z][A-Za-z]+)=", guide):
        if parameter in main["parameters"] or not re.search(rf"--parameters[^\n]*\b{parameter}=", guide):
            continue
        pytest.fail(f"README.md passes --parameters {parameter}=, which main.bicep does not declare")
