"""The Bicep in infra/, read statically: it parses; every resource body has the shape of its REST
model; nothing Flex Consumption refuses is set; modules are called as declared; it sets exactly the
settings the code reads; it keeps the promises a security reviewer signs off (no keys, scoped
roles, the lock, the immutable archive); its alerts read the fields the code logs; and the deploy
guide names only what is real.

The checks of tests/helpers/bicep.py are each also run on a copy of the templates broken on
purpose, to show that they fail. Nothing here reaches Azure or runs a program: tests/infra runs
checkov.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sessions.logs import EVENT_FIELDS
from sessions.settings import (
    APP_SETTINGS,
    DEFAULT_MAX_BODY_BYTES,
    STORAGE_IDENTITY_SUFFIXES,
    Setting,
    Settings,
)
from tests.helpers import PROJECT
from tests.helpers.bicep import (
    BICEP_FILES,
    FLEX_DEPRECATED_APP_SETTINGS,
    FLEX_DEPRECATED_SITE_PROPERTIES,
    INFRA,
    MAIN,
    PARAMETER_FILES,
    accessor_path,
    declared_resources,
    decorator,
    flex_deprecation_problems,
    function_app_settings,
    is_expression,
    module_contract_problems,
    only,
    parsed,
    property_read_problems,
    resources_of_type,
    rest_model,
    sample_values,
    secure_parameters,
    type_problems,
    unwrapped,
)
from tools.host import BODY_LIMIT_SETTING

DEPLOY_GUIDE = PROJECT / "docs" / "deploy.md"
MODULES = INFRA / "modules"

# Settings that the Functions host and the Application Insights agent read in Azure (not our code).
# Host storage is blobs only: the queue trigger uses the app's own connection (SESSIONS_STORAGE).
HOST_SETTINGS_IN_AZURE = frozenset(
    {
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri",
        "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    }
)
# Settings that Core Tools needs locally; on Flex Consumption the runtime is in functionAppConfig.
HOST_SETTINGS_LOCAL = frozenset({"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", BODY_LIMIT_SETTING})
STORAGE_IDENTITY_SETTINGS = frozenset(f"{Setting.STORAGE}__{suffix}" for suffix in STORAGE_IDENTITY_SUFFIXES)

# The push queue's name in Azure (main.bicep's default) and in local.settings.sample.json.
PUSH_QUEUE = "pushes-to-store"

# The main.bicep parameter behind each setting, so that its default is the code's default.
BICEP_PARAMETER_OF_SETTING = {
    Setting.SESSIONS_TABLE: "sessionsTableName",
    Setting.REJECTED_TABLE: "rejectedTableName",
    Setting.SESSION_INDEX_TABLE: "sessionIndexTableName",
    Setting.PUSHES_TABLE: "pushesTableName",
    Setting.RAW_ARCHIVE_CONTAINER: "rawArchiveContainerName",
    Setting.PUSH_QUEUE: "pushQueueName",
    Setting.MAX_BODY_BYTES: "maxBodyBytes",
    Setting.MAX_PUSH_SESSIONS: "maxPushSessions",
    Setting.PUSH_DEADLINE_SECONDS: "pushDeadlineSeconds",
    Setting.SESSION_MAX_ENERGY_KWH: "sessionMaxEnergyKwh",
    Setting.SESSION_MAX_POWER_KW: "sessionMaxPowerKw",
    Setting.SESSION_MAX_DAYS: "sessionMaxDays",
    Setting.SESSION_MAX_FUTURE_HOURS: "sessionMaxFutureHours",
    Setting.SESSION_EARLIEST_START: "sessionEarliestStart",
}


def main_parameters() -> dict[str, Any]:
    parameters: dict[str, Any] = parsed(MAIN)["parameters"]
    return parameters


# --- a copy of the templates, broken on purpose -----------------------------------------


@pytest.fixture
def broken(tmp_path: Path) -> Any:
    """A copy of infra/ and a function that replaces one text in one of its files."""
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)

    def replace(relative: str, old: str, new: str) -> Path:
        path = copy / relative
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{relative} should hold {old!r} exactly once"
        path.write_text(text.replace(old, new), encoding="utf-8")
        return copy

    return replace


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


# --- Flex Consumption: what the service refuses -----------------------------------------


def test_no_site_property_or_app_setting_on_the_flex_consumption_deprecation_list() -> None:
    assert flex_deprecation_problems() == []


def test_the_deprecation_list_names_what_the_issue_names() -> None:
    assert {
        "ftpsState",
        "linuxFxVersion",
        "alwaysOn",
        "use32BitWorkerProcess",
    } <= FLEX_DEPRECATED_SITE_PROPERTIES
    assert {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    } <= FLEX_DEPRECATED_APP_SETTINGS


@pytest.mark.parametrize(
    ("old", "new", "found"),
    [
        (
            "      http20Enabled: true\n",
            "      http20Enabled: true\n      ftpsState: 'Disabled'\n",
            "ftpsState",
        ),
        (
            "      http20Enabled: true\n",
            "      http20Enabled: true\n      linuxFxVersion: 'Python|3.11'\n",
            "linuxFxVersion",
        ),
        ("      http20Enabled: true\n", "      http20Enabled: true\n      alwaysOn: false\n", "alwaysOn"),
        (
            "    httpsOnly: true\n",
            "    httpsOnly: true\n    vnetRouteAllEnabled: true\n",
            "vnetRouteAllEnabled",
        ),
        (
            "      appSettings: [\n",
            "      appSettings: [\n        {\n          name: 'FUNCTIONS_WORKER_RUNTIME'\n"
            "          value: 'python'\n        }\n",
            "FUNCTIONS_WORKER_RUNTIME",
        ),
        (
            "      appSettings: [\n",
            "      appSettings: [\n        {\n          name: 'WEBSITE_RUN_FROM_PACKAGE'\n"
            "          value: '1'\n        }\n",
            "WEBSITE_RUN_FROM_PACKAGE",
        ),
    ],
    ids=[
        "ftpsState",
        "linuxFxVersion",
        "alwaysOn",
        "vnetRouteAllEnabled",
        "FUNCTIONS_WORKER_RUNTIME",
        "RUN_FROM_PACKAGE",
    ],
)
def test_the_deprecation_check_fails_on_a_refused_property_or_setting(
    broken: Any, old: str, new: str, found: str
) -> None:
    copy = broken("modules/functionapp.bicep", old, new)
    problems = flex_deprecation_problems(copy)
    assert any(found in problem for problem in problems), problems


# --- every resource body against its REST model ------------------------------------------


def test_every_resource_type_and_api_version_has_its_rest_model() -> None:
    missing = [resource.where for resource in declared_resources() if rest_model(resource) is None]
    assert missing == [], "add the REST model (and its azure-mgmt-* pin) to REST_MODELS"


def test_every_resource_body_has_the_shape_of_its_rest_model() -> None:
    assert type_problems() == []


def test_every_property_read_exists_in_the_rest_model() -> None:
    assert property_read_problems() == []


@pytest.mark.parametrize(
    ("relative", "old", "new", "found"),
    [
        # A misspelt property (a case slip the service would not forgive).
        (
            "modules/functionapp.bicep",
            "instanceMemoryMB: instanceMemoryMB",
            "instanceMemoryMb: instanceMemoryMB",
            "scaleAndConcurrency.instanceMemoryMb",
        ),
        # A setting under the wrong object: httpsOnly belongs to the site, not to siteConfig.
        (
            "modules/functionapp.bicep",
            "    httpsOnly: true\n    publicNetworkAccess: 'Enabled'\n    clientCertEnabled: false\n",
            "    publicNetworkAccess: 'Enabled'\n    clientCertEnabled: false\n",
            "",
        ),
        # And the other way round: minTlsVersion belongs to siteConfig, not to the site.
        (
            "modules/functionapp.bicep",
            "    clientCertEnabled: false\n",
            "    clientCertEnabled: false\n    minTlsVersion: '1.2'\n",
            "properties.minTlsVersion",
        ),
        # Inside a polymorphic object: the Event Grid destination chosen by its endpointType.
        (
            "modules/keyvault.bicep",
            "        severity: 'Sev2'",
            "        sevrity: 'Sev2'",
            "destination.properties.sevrity",
        ),
        # Inside a list item.
        (
            "modules/monitoring.bicep",
            "useCommonAlertSchema: true",
            "useCommonAlertScheme: true",
            "useCommonAlertScheme",
        ),
        # A property only Azure sets.
        (
            "modules/functionapp.bicep",
            "    httpsOnly: true\n",
            "    httpsOnly: true\n    defaultHostName: 'x'\n",
            "read-only",
        ),
        # An object where the model has a value.
        (
            "modules/storage.bicep",
            "      days: blobRetentionDays\n    }\n    containerDelete",
            "      days: {\n        value: 7\n      }\n    }\n    containerDelete",
            "deleteRetentionPolicy.days",
        ),
        # An API version with no model of its own.
        (
            "modules/identity.bicep",
            "userAssignedIdentities@2023-01-31",
            "userAssignedIdentities@2023-07-31-preview",
            "no REST model",
        ),
    ],
    ids=[
        "misspelt",
        "under-siteConfig",
        "above-siteConfig",
        "discriminated",
        "list-item",
        "read-only",
        "object-for-value",
        "api-version",
    ],
)
def test_the_type_check_fails_on_a_broken_copy(
    broken: Any, relative: str, old: str, new: str, found: str
) -> None:
    copy = broken(relative, old, new)
    if not found:  # the setting taken out above is put back under siteConfig
        copy = broken(
            relative, "      http20Enabled: true\n", "      http20Enabled: true\n      httpsOnly: true\n"
        )
        found = "siteConfig.httpsOnly"
    problems = type_problems(copy)
    assert any(found in problem for problem in problems), problems


def test_the_property_read_check_fails_on_a_misspelt_read(broken: Any) -> None:
    copy = broken("modules/storage.bicep", "primaryEndpoints.queue\n", "primaryEndpoints.queues\n")
    problems = property_read_problems(copy)
    assert any("primaryEndpoints.queues" in problem for problem in problems), problems


# --- module parameters and outputs against their use --------------------------------------


def test_modules_are_called_with_their_parameters_and_read_for_their_outputs() -> None:
    assert module_contract_problems() == []


@pytest.mark.parametrize(
    ("relative", "old", "new", "found"),
    [
        (
            "main.bicep",
            "    silenceAlertHours: silenceAlertHours\n",
            "    silenceAlertHour: silenceAlertHours\n",
            "passes silenceAlertHour",
        ),
        ("main.bicep", "    pushQueueName: pushQueueName\n", "", "does not pass required pushQueueName"),
        (
            "main.bicep",
            "storage.outputs.queueEndpoint",
            "storage.outputs.queueEndpoints",
            "reads output queueEndpoints",
        ),
        (
            "modules/storage.bicep",
            "output pushQueueName string",
            "output pushQueue string",
            "reads output pushQueueName",
        ),
        (
            "modules/identity.bicep",
            "param tags object\n",
            "param tags object\nparam unused string\n",
            "unused is declared but never used",
        ),
        (
            "modules/identity.bicep",
            "output id string",
            "output spare string = identity.id\noutput id string",
            "output spare is never read",
        ),
    ],
    ids=[
        "unknown-parameter",
        "missing-parameter",
        "unknown-output",
        "renamed-output",
        "unused-parameter",
        "unread-output",
    ],
)
def test_the_module_check_fails_on_a_broken_copy(
    broken: Any, relative: str, old: str, new: str, found: str
) -> None:
    problems = module_contract_problems(broken(relative, old, new))
    assert any(found in problem for problem in problems), problems


# --- names, and the parameters that cannot deploy -----------------------------------------


def _names_checks() -> dict[str, Any]:
    names = parsed(MODULES / "names.bicep")["parameters"]
    return {name: parameter for name, parameter in names.items() if decorator(parameter, "allowed") == [True]}


def test_the_names_module_refuses_each_check_that_is_false() -> None:
    checks = _names_checks()
    assert set(checks) == {
        "environmentNameHasOnlyLettersDigitsAndHyphens",
        "functionAppNameIsEmptyOrAValidSiteName",
        "zoneRedundantPlanHasZoneRedundantStorage",
    }
    passed = unwrapped(parsed(MAIN)["modules"]["names"]["config"])["params"]
    for name, parameter in checks.items():
        assert parameter["type"] == "bool", name
        assert passed[name] in parsed(MAIN)["variables"], f"main.bicep should compute {name}"
        assert decorator(parameter, "description"), f"{name} should say what to do when it fails"


def test_the_environment_name_check_allows_letters_digits_and_hyphens_only() -> None:
    """azd accepts [a-zA-Z0-9-()_.]{1,64}; App Service names only letters, digits and hyphens."""
    allowed = parsed(MAIN)["variables"]["siteNameCharacters"]["value"]
    letters = "abcdefghijklmnopqrstuvwxyz"
    assert sorted(allowed) == sorted(letters + letters.upper() + "0123456789-")
    code = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "filter(environmentNameCharacters, c => !contains(siteNameCharacters, c))" in code


def test_environment_name_length_is_refused_before_a_name_grows_too_long() -> None:
    environment = main_parameters()["environmentName"]
    assert decorator(environment, "min_length") == 1
    assert decorator(environment, "max_length") <= 32
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text(encoding="utf-8"))
    token = 13  # uniqueString()
    assert len(f"{abbreviations['webSitesFunctions']}cp-") + 20 + 1 + token <= 60  # site names
    assert len(abbreviations["storageStorageAccounts"]) + token <= 24  # storage accounts
    assert len(abbreviations["keyVaultVaults"]) + token <= 24  # key vaults


def test_every_module_waits_for_the_names_checks() -> None:
    """Each module takes a name from the names module, or reads a module that does: when a check
    fails, nothing is created."""
    modules = parsed(MAIN)["modules"]

    def read_modules(value: Any) -> set[str]:
        """The modules whose outputs a value reads (`m.outputs.x`, also inside '${...}')."""
        path = accessor_path(value) if is_expression(value) else []
        if len(path) > 2 and path[1] == "outputs":
            return {path[0]}
        if isinstance(value, str):
            return set(re.findall(r"\b(\w+)\.outputs\.", value))
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
        return set().union(*(read_modules(item) for item in items))

    reads = {
        symbol: read_modules(unwrapped(module["config"])["params"]) for symbol, module in modules.items()
    }

    def waits(symbol: str, seen: frozenset[str] = frozenset()) -> bool:
        return "names" in reads[symbol] or any(
            waits(other, seen | {symbol}) for other in reads[symbol] - seen
        )

    assert [symbol for symbol in modules if symbol != "names" and not waits(symbol)] == []


def test_zone_redundancy_is_refused_on_storage_that_is_not_zone_redundant() -> None:
    code = (INFRA / "main.bicep").read_text(encoding="utf-8")
    check = code.split("var zoneRedundancyIsPossible =", 1)[1].split("\nvar ", 1)[0]
    assert "!zoneRedundant" in check
    assert set(re.findall(r"'(Standard_\w+)'", check)) == {"Standard_GZRS", "Standard_RAGZRS"}
    assert {"Standard_GZRS", "Standard_RAGZRS"} <= set(
        decorator(main_parameters()["storageSkuName"], "allowed")
    )


# --- the settings the code reads --------------------------------------------------------


def test_function_app_sets_exactly_the_settings_the_code_reads() -> None:
    """Every setting the code reads is set; nothing else is, but the host's own settings.

    In particular none of the settings Flex Consumption rejects (FUNCTIONS_WORKER_RUNTIME,
    FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENTSHARE...).
    """
    expected = set(APP_SETTINGS) | STORAGE_IDENTITY_SETTINGS | HOST_SETTINGS_IN_AZURE
    assert set(function_app_settings()) == expected


def test_bicep_defaults_are_the_code_defaults() -> None:
    assert set(BICEP_PARAMETER_OF_SETTING) == set(APP_SETTINGS) - {Setting.API_KEYS, Setting.READ_KEYS}
    parameters = main_parameters()
    from_bicep: dict[str, str] = {
        setting.value: str(parameters[name]["default"])
        for setting, name in BICEP_PARAMETER_OF_SETTING.items()
    }
    # The settings without a default in the code are set in Azure: the push queue from its
    # parameter (the queue storage.bicep creates), the host's storage in its identity-based form.
    in_azure = {**from_bicep, **dict.fromkeys(HOST_SETTINGS_IN_AZURE, "x")}
    assert Settings.from_env(in_azure) == replace(Settings(), push_queue=PUSH_QUEUE, host_storage=True)


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


def test_the_hosts_body_limit_is_twice_the_receivers_so_that_the_host_buffers_no_more() -> None:
    """The host reads a body whole before the function runs, and over its limit answers 500
    itself; at twice MAX_BODY_BYTES a push a little too large still gets the receiver's 413."""
    settings = function_app_settings()
    assert settings[Setting.MAX_BODY_BYTES] == {
        "function": {"type": "string", "parameters": {"value_to_convert": "maxBodyBytes"}}
    }
    assert settings[BODY_LIMIT_SETTING] == {
        "function": {
            "type": "string",
            "parameters": {
                "value_to_convert": {
                    "operator": {
                        "type": "multiply",
                        "operands": {"operand_1": "maxBodyBytes", "operand_2": 2},
                    }
                }
            },
        }
    }
    functionapp = unwrapped(parsed(MAIN)["modules"]["functionApp"]["config"])["params"]
    assert functionapp["maxBodyBytes"] == "maxBodyBytes"
    assert main_parameters()["maxBodyBytes"]["default"] == DEFAULT_MAX_BODY_BYTES
    assert int(sample_values()[BODY_LIMIT_SETTING]) == 2 * int(sample_values()[Setting.MAX_BODY_BYTES])


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


def test_sample_settings_hold_the_code_defaults() -> None:
    """Only the key, the storage connections and the push queue (which have no default) differ
    from what the code assumes when unset; the queue is the one Bicep creates."""
    from_sample = Settings.from_env(sample_values())
    assert (from_sample.push_queue, from_sample.host_storage) == (PUSH_QUEUE, True)
    defaults = replace(Settings(), push_queue=PUSH_QUEUE, host_storage=True)
    for field in dataclasses.fields(Settings):
        if field.name not in {"api_keys", "api_keys_unresolved", "read_keys", "storage"}:
            assert getattr(from_sample, field.name) == getattr(defaults, field.name), field.name


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
    # Point-in-time restore cannot be combined with the archive's immutability policy.
    assert "restorePolicy" not in blobs


def test_key_vault_uses_rbac_with_soft_delete_and_purge_protection() -> None:
    vault = only("Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True


def test_no_deployment_writes_the_api_keys_secret_or_takes_a_key() -> None:
    """A redeploy must not write a new version of the secret (each one re-arms the expiry warning
    and the reference's cache): the operator sets it once per rotation (docs/deploy.md)."""
    assert resources_of_type("Microsoft.KeyVault/vaults/secrets") == []
    for path in BICEP_FILES:
        assert secure_parameters(path) == {}, path.name
        assert "utcNow(" not in path.read_text(encoding="utf-8"), path.name


def test_function_app_is_https_only_with_tls_1_2_and_no_ftp_or_basic_auth() -> None:
    """Backs the checkov skip of CKV_AZURE_78: FTP is closed by the publishing policy, not ftpsState."""
    site = only("Microsoft.Web/sites")["properties"]
    assert site["httpsOnly"] is True
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    assert "ftpsState" not in site["siteConfig"]
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


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(INFRA)))
def test_secure_parameters_have_no_default(path: Path) -> None:
    for name, parameter in secure_parameters(path).items():
        assert parameter["default"] is None, f"{path.name}: @secure() {name} has a default"


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda path: path.name)
def test_parameter_files_hold_no_secret_and_only_declared_parameters(path: Path) -> None:
    values = json.loads(path.read_text(encoding="utf-8"))["parameters"]
    declared = main_parameters()
    assert set(values) <= set(declared), f"{path.name} sets undeclared parameters"
    assert not set(values) & set(secure_parameters(MAIN)), f"{path.name} holds a @secure() parameter"


def limit_problems(name: str, value: Any, parameter: dict[str, Any]) -> list[str]:
    """What Resource Manager refuses at validation: a value outside @allowed or the limits."""
    allowed = decorator(parameter, "allowed")
    problems = [] if allowed is None or value in allowed else [f"{name}: {value!r} is not one of {allowed}"]
    size = len(value) if isinstance(value, str | list) else value
    for kind, low in (("min_value", True), ("max_value", False), ("min_length", True), ("max_length", False)):
        limit = decorator(parameter, kind)
        if limit is not None and (size < limit if low else size > limit):
            problems.append(f"{name}: {value!r} breaks {kind} {limit}")
    return problems


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda path: path.name)
def test_parameter_file_values_satisfy_the_declared_types_and_limits(path: Path) -> None:
    declared = main_parameters()
    types = {"string": str, "int": int, "bool": bool, "array": list, "object": dict}
    for name, entry in json.loads(path.read_text(encoding="utf-8"))["parameters"].items():
        value, parameter = entry["value"], declared[name]
        if isinstance(value, str) and value.startswith("${"):
            continue  # azd fills it in from its environment
        assert isinstance(value, types[parameter["type"]]), f"{name}: {value!r} is not {parameter['type']}"
        assert limit_problems(name, value, parameter) == []


def test_parameter_defaults_satisfy_their_own_limits() -> None:
    for name, parameter in main_parameters().items():
        default = parameter["default"]
        if isinstance(default, int | str | list) and not is_expression(default):
            assert limit_problems(name, default, parameter) == []


def test_there_is_a_dev_and_a_prod_parameter_file() -> None:
    names = {path.name for path in PARAMETER_FILES}
    assert {"main.parameters.json", "main.dev.parameters.json", "main.prod.parameters.json"} <= names


def test_azd_passes_the_principal_type_of_whoever_runs_it() -> None:
    values = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert values["operatorPrincipalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    assert values["operatorPrincipalType"]["value"] == "${AZURE_PRINCIPAL_TYPE=User}"


# --- least privilege ----------------------------------------------------------------------

ROLE_IDS = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Storage Account Contributor": "17d1049b-9a84-46fb-8f53-869881c3d3ab",
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageBlobDataContributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "storageBlobDataReader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "storageTableDataReader": "76199698-9eea-4c19-bc75-cec21354c6b6",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageQueueDataReader": "19e7f393-937e-4f77-808e-94535e297925",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}


def role_assignments() -> list[tuple[str, str, str]]:
    """(principal parameter, role, scope symbol) of every role assignment in rbac.bicep."""
    rbac = MODULES / "rbac.bicep"
    found = []
    for resource in declared_resources():
        if resource.path != rbac or resource.type != "Microsoft.Authorization/roleAssignments":
            continue
        properties = resource.body["properties"]
        role = accessor_path(properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"])
        scope = resource.body["scope"]
        if is_expression(scope):  # tables[i]
            scope = scope["operator"]["operands"]["operand_1"]
        found.append((properties["principalId"], role[-1], scope))
    return found


def test_role_ids_are_the_built_in_ones() -> None:
    roles = parsed(MODULES / "rbac.bicep")["variables"]["roles"]["value"]
    for name, role_id in roles.items():
        assert ROLE_IDS[name] == role_id, name
    rbac = (MODULES / "rbac.bicep").read_text(encoding="utf-8")
    for broad in ("Owner", "Contributor", "Storage Account Contributor"):
        assert ROLE_IDS[broad] not in rbac, f"{broad} is assigned"


def test_the_app_gets_data_roles_on_its_own_tables_containers_and_queues_only() -> None:
    app = {(role, scope) for principal, role, scope in role_assignments() if principal == "appPrincipalId"}
    assert app == {
        ("storageTableDataContributor", "tableService"),
        ("storageBlobDataContributor", "rawArchiveContainer"),
        ("storageBlobDataContributor", "deploymentContainer"),
        ("storageBlobDataOwner", "hostContainers"),
        ("storageQueueDataContributor", "queues"),
        ("keyVaultSecretsUser", "vault"),
        ("monitoringMetricsPublisher", "applicationInsights"),
    }
    scopes = {
        resource.symbol: resource for resource in declared_resources() if resource.path.name == "rbac.bicep"
    }
    assert scopes["tableService"].type == "Microsoft.Storage/storageAccounts/tableServices"
    assert scopes["queues"].type.endswith("/queues")
    assert scopes["hostContainers"].type.endswith("/containers")


def test_the_table_role_is_on_the_table_service_which_holds_the_apps_four_tables_alone() -> None:
    """Entity-group transactions go to the account's $batch URL: a role scoped to one table is
    not documented to authorise them (docs/decisions/table-role-at-the-service.md)."""
    (contributor,) = [
        resource
        for resource in declared_resources()
        if resource.path.name == "rbac.bicep" and resource.symbol == "appTableDataContributor"
    ]
    assert contributor.body["scope"] == "tableService"
    assert "condition" not in contributor.body and "loop" not in str(contributor.body)
    tables = [
        resource
        for resource in declared_resources()
        if resource.type == "Microsoft.Storage/storageAccounts/tableServices/tables" and not resource.existing
    ]
    assert [resource.path.name for resource in tables] == ["storage.bicep"]
    storage = parsed(MODULES / "storage.bicep")["resources"]["tables"]["config"]
    assert "tableNames" in json.dumps(storage)


def test_the_tables_queues_and_containers_are_created_not_left_to_the_app() -> None:
    main = unwrapped(parsed(MAIN)["modules"]["storage"]["config"])["params"]
    assert main["tableNames"] == "tableNames"
    assert parsed(MAIN)["variables"]["tableNames"]["value"] == [
        "sessionsTableName",
        "rejectedTableName",
        "sessionIndexTableName",
        "pushesTableName",
    ]
    storage = parsed(MODULES / "storage.bicep")["variables"]
    assert storage["queueNames"]["value"] == ["pushQueueName", "${pushQueueName}-poison"]
    assert storage["hostContainerNames"]["value"] == ["azure-webjobs-hosts", "azure-webjobs-secrets"]
    created = {resource.symbol for resource in declared_resources() if resource.path.name == "storage.bicep"}
    assert {"tables", "queues", "hostContainers", "rawArchiveContainer", "deploymentContainer"} <= created


def test_the_operator_can_read_but_not_change_the_billing_records() -> None:
    operator = {
        (role, scope) for principal, role, scope in role_assignments() if principal == "operatorPrincipalId"
    }
    assert operator == {
        ("keyVaultSecretsOfficer", "vault"),
        ("storageTableDataReader", "tableService"),
        ("storageBlobDataReader", "rawArchiveContainer"),
        ("storageQueueDataReader", "queues"),
    }


# --- the billing records ------------------------------------------------------------------


def test_the_storage_account_can_be_locked_against_deletion_and_is_in_prod() -> None:
    (lock,) = [
        resource
        for resource in declared_resources()
        if resource.type == "Microsoft.Authorization/locks" and not resource.existing
    ]
    assert lock.body["scope"] == "account"
    assert lock.body["properties"]["level"] == "CanNotDelete"
    storage = parsed(MODULES / "storage.bicep")["resources"]["accountLock"]["config"]
    assert storage["condition"] == "deleteLock"
    prod = json.loads((INFRA / "main.prod.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert prod["storageDeleteLock"]["value"] is True


def test_the_raw_archive_is_immutable_for_its_retention() -> None:
    (policy,) = [
        resource
        for resource in declared_resources()
        if resource.type.endswith("/containers/immutabilityPolicies") and not resource.existing
    ]
    assert policy.body["parent"] == "rawArchiveContainer"
    assert policy.body["properties"]["immutabilityPeriodSinceCreationInDays"] == "rawArchiveImmutabilityDays"
    assert policy.body["properties"]["allowProtectedAppendWrites"] is False
    days = main_parameters()["rawArchiveImmutabilityDays"]
    assert days["default"] >= 1 and decorator(days, "max_value") == 146000


# --- watching itself ----------------------------------------------------------------------

ALERTS = MODULES / "alerts.bicep"


def alert_queries(infra: Path = INFRA) -> dict[str, str]:
    """Each log alert rule's query, by rule symbol (variables resolved)."""
    path = infra / "modules" / "alerts.bicep"
    variables = parsed(path)["variables"]
    queries = {}
    for symbol, resource in parsed(path)["resources"].items():
        if resource["type"] != "Microsoft.Insights/scheduledQueryRules":
            continue
        (condition,) = unwrapped(resource["config"])["properties"]["criteria"]["allOf"]
        queries[symbol] = _resolved(condition["query"], variables, parsed(path)["parameters"])
    return queries


def _resolved(value: Any, variables: dict[str, Any], parameters: dict[str, Any]) -> str:
    """A query as Resource Manager would send it: variables followed, replace() applied, and a
    parameter passed through string() read as its default (or its name in braces when it has none)."""
    if isinstance(value, str):
        return _resolved(variables[value]["value"], variables, parameters) if value in variables else value
    function = value["function"]
    arguments = function["parameters"]
    if function["type"] == "replace":
        original = _resolved(arguments["original_string"], variables, parameters)
        return original.replace(
            arguments["old_string"], _resolved(arguments["new_string"], variables, parameters)
        )
    if function["type"] == "string":
        name = arguments["value_to_convert"]
        default = parameters.get(name, {}).get("default")
        return str(default) if default is not None else f"<{name}>"
    raise AssertionError(f"a query built with {function['type']}(), which the test cannot follow")


def alert_query_problems(infra: Path = INFRA) -> list[str]:
    """Every event name and log field a query reads that sessions/logs.py does not declare."""
    problems = []
    for symbol, query in alert_queries(infra).items():
        if not re.search(r"^\s*(let \w+ = toscalar\()?traces\b", query, flags=re.MULTILINE):
            continue  # reads Application Insights' own tables, not the app's log lines
        if "parse_json(message)" not in query or "extend e = " not in query:
            problems.append(f"{symbol}: does not read the log line as JSON into e")
        events = set(re.findall(r'event_name\s*==\s*"(\w+)"', query))
        for listed in re.findall(r"event_name\s+in\s*\(([^)]*)\)", query):
            events |= set(re.findall(r'"(\w+)"', listed))
        if not events:
            problems.append(f"{symbol}: selects no event")
        problems += [
            f"{symbol}: event {event} is not in EVENT_FIELDS" for event in sorted(events - set(EVENT_FIELDS))
        ]
        fields = set().union(*(EVENT_FIELDS.get(event, frozenset()) for event in events)) | {"event"}
        read = set(re.findall(r"\be\.(\w+)", query))
        problems += [
            f"{symbol}: field {field} is logged by none of {sorted(events)}"
            for field in sorted(read - fields)
        ]
    return problems


def test_the_alert_queries_read_only_events_and_fields_the_code_logs() -> None:
    assert set(alert_queries()) == {
        "rejectedSessionsAlert",
        "refusedPushesAlert",
        "silenceAlert",
        "availabilityAlert",
        "failedExecutionsAlert",
        "refusedReadsAlert",
    }
    assert alert_query_problems() == []


@pytest.mark.parametrize(
    ("old", "new", "found"),
    [
        ("rejected = toint(e.rejected)", "rejected = toint(e.rejected_sessions)", "field rejected_sessions"),
        ('("push", "push_finished") and rejected', '("push", "push_done") and rejected', "event push_done"),
        ("status = toint(e.status), outcome", "status = toint(e.http_status), outcome", "field http_status"),
    ],
    ids=["renamed-field", "renamed-event", "field-of-another-name"],
)
def test_the_alert_query_check_fails_when_a_query_reads_what_the_code_does_not_log(
    broken: Any, old: str, new: str, found: str
) -> None:
    problems = alert_query_problems(broken("modules/alerts.bicep", old, new))
    assert any(found in problem for problem in problems), problems


def test_the_three_log_alerts_say_what_they_watch() -> None:
    queries = alert_queries()
    assert re.search(
        r'event_name in \("push", "push_finished"\) and rejected > 0', queries["rejectedSessionsAlert"]
    )
    refused = queries["refusedPushesAlert"]
    assert 'event_name == "push" and status >= 400' in refused
    assert 'event_name == "push_finished" and outcome == "poisoned"' in refused
    assert "last_taken = maxif(timestamp, status in (200, 202))" in queries["silenceAlert"]


def _alert_rule(symbol: str) -> dict[str, Any]:
    body: dict[str, Any] = unwrapped(parsed(ALERTS)["resources"][symbol]["config"])
    return body


def test_the_silence_alert_fires_when_no_push_was_taken_for_the_chosen_hours() -> None:
    silence = _alert_rule("silenceAlert")["properties"]
    assert silence["overrideQueryTimeRange"] == "P2D"
    (condition,) = silence["criteria"]["allOf"]
    assert (condition["timeAggregation"], condition["operator"], condition["threshold"]) == (
        "Count",
        "GreaterThan",
        0,
    )
    query = alert_queries()["silenceAlert"]
    assert main_parameters()["silenceAlertHours"]["default"] == 3
    # The module's parameter has no default: the chosen hours reach the query through replace().
    assert "last_taken < ago(<silenceAlertHours>h)" in query
    assert "{silenceAlertHours}" not in query


def test_silence_and_health_stay_quiet_until_the_feed_has_started() -> None:
    """A new deployment answers 503 until its key and code are in place: no page before the first
    push (other than a 401) in the two days the rules look back over."""
    queries = alert_queries()
    assert re.search(
        r'event_name == "push" and status != 401\n\| summarize pushes = count\(\)', queries["silenceAlert"]
    )
    assert "where pushes > 0 and" in queries["silenceAlert"]
    health = queries["availabilityAlert"]
    assert 'event_name == "push" and status != 401' in health and "count) > 0;" in health
    assert re.search(r"^\| where started and failed_locations >= 2$", health, flags=re.MULTILINE)
    assert _alert_rule("availabilityAlert")["properties"]["overrideQueryTimeRange"] == "P2D"
    # The refused-pushes rule counts pushes only, so it cannot fire before one arrives.
    assert "availabilityResults" not in queries["refusedPushesAlert"]


def test_every_alert_notifies_the_action_group() -> None:
    (group,) = resources_of_type("Microsoft.Insights/actionGroups")
    receivers = group["properties"]["emailReceivers"]["operator"]["operands"]
    assert receivers["condition"]["function"]["type"] == "empty"  # no address: no receiver, alerts still fire
    rules = resources_of_type("Microsoft.Insights/scheduledQueryRules")
    assert len(rules) == 6
    for rule in rules:
        assert rule["properties"]["actions"]["actionGroups"] == ["actionGroupId"], rule["name"]
    assert "alertEmail" in main_parameters() and main_parameters()["alertEmail"]["default"] == ""


def test_the_health_endpoint_is_probed_from_several_regions_and_alerted_on() -> None:
    (test,) = resources_of_type("Microsoft.Insights/webtests")
    assert test["kind"] == "standard" and test["properties"]["Kind"] == "standard"
    assert test["properties"]["Request"]["RequestUrl"] == "healthUrl"
    assert test["properties"]["ValidationRules"]["ExpectedHttpStatusCode"] == 200
    assert len(main_parameters()["availabilityTestLocations"]["default"]) >= 3
    params = unwrapped(parsed(MAIN)["modules"]["alerts"]["config"])["params"]
    assert params["healthUrl"].endswith("/api/health")
    health = alert_queries()["availabilityAlert"]
    assert "availabilityResults\n| where timestamp > ago(5m)" in health
    assert "dcountif(location, not(tobool(success)))" in health


def test_failed_executions_raise_an_alert_but_not_the_availability_probes() -> None:
    failed = alert_queries()["failedExecutionsAlert"]
    assert failed.lstrip().startswith("requests\n| where not(tobool(success))")
    assert 'resultCode !in ("400", "401", "404", "405", "413", "415")' in failed
    assert "isempty(operation_SyntheticSource)" in failed
    (condition,) = _alert_rule("failedExecutionsAlert")["properties"]["criteria"]["allOf"]
    assert (condition["operator"], condition["threshold"]) == ("GreaterThan", 0)


def test_diagnostic_settings_send_the_audit_trail_to_the_workspace() -> None:
    by_scope: dict[str, set[str]] = {}
    symbols = {(resource.path, resource.symbol): resource.type for resource in declared_resources()}
    for resource in declared_resources():
        if resource.type == "Microsoft.Insights/diagnosticSettings":
            assert resource.body["properties"]["workspaceId"] == "logAnalyticsWorkspaceId", resource.where
            scope_type = symbols[(resource.path, resource.body["scope"])]
            categories = {log["category"] for log in resource.body["properties"]["logs"] if log["enabled"]}
            by_scope.setdefault(scope_type, set()).update(categories)
    assert by_scope == {
        "Microsoft.KeyVault/vaults": {"AuditEvent"},
        "Microsoft.Storage/storageAccounts/tableServices": {"StorageWrite", "StorageDelete"},
        "Microsoft.Storage/storageAccounts/blobServices": {"StorageWrite", "StorageDelete"},
        "Microsoft.Web/sites": {"FunctionAppLogs"},
    }


def test_the_action_group_is_warned_before_the_api_key_or_the_read_key_expires() -> None:
    (topic,) = resources_of_type("Microsoft.EventGrid/systemTopics")
    assert topic["properties"]["topicType"] == "Microsoft.KeyVault.vaults"
    assert accessor_path(topic["properties"]["source"]) == ["vault", "id"]
    subscriptions = resources_of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert {subscription["properties"]["filter"]["subjectBeginsWith"] for subscription in subscriptions} == {
        "apiKeysSecretName",
        "readKeysSecretName",
    }
    for subscription in subscriptions:
        properties = subscription["properties"]
        assert "Microsoft.KeyVault.SecretNearExpiry" in properties["filter"]["includedEventTypes"]
        assert properties["destination"]["endpointType"] == "MonitorAlert"
        assert properties["destination"]["properties"]["actionGroups"] == ["actionGroupId"]
        assert properties["eventDeliverySchema"] == "CloudEventSchemaV1_0"  # the only one Monitor alerts take


def test_read_keys_setting_is_a_key_vault_reference_to_a_secret_of_its_own() -> None:
    value = function_app_settings()[Setting.READ_KEYS]
    assert value == "@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${readKeysSecretName})"
    assert (
        main_parameters()["readKeysSecretName"]["default"]
        != main_parameters()["apiKeysSecretName"]["default"]
    )


# --- the deploy guide ---------------------------------------------------------------------


def guide() -> str:
    return DEPLOY_GUIDE.read_text(encoding="utf-8")


def test_deploy_guide_names_only_real_parameters_and_every_output() -> None:
    text = guide()
    main = parsed(MAIN)
    for output in main["outputs"]:
        assert output in text, f"docs/deploy.md does not mention output {output}"
    for parameter in re.findall(r"\b([a-z][A-Za-z]+)=", text):
        if parameter in main["parameters"] or not re.search(rf"--parameters[^\n]*\b{parameter}=", text):
            continue
        pytest.fail(f"docs/deploy.md passes --parameters {parameter}=, which main.bicep does not declare")


def test_deploy_guide_describes_every_parameter() -> None:
    text = guide()
    assert [name for name in main_parameters() if f"`{name}`" not in text] == []


def test_deploy_guide_previews_with_what_if_before_the_first_deployment() -> None:
    text = guide()
    assert "az deployment group what-if" in text
    assert text.index("az deployment group what-if") < text.index("az deployment group create")


def test_deploy_guide_documents_each_alert_and_how_to_lift_the_lock() -> None:
    text = guide()
    for resource in declared_resources():
        if resource.type in {"Microsoft.Insights/scheduledQueryRules", "Microsoft.Insights/metricAlerts"}:
            suffix = str(resource.body["name"]).rsplit("}", 1)[-1]
            assert suffix in text, f"docs/deploy.md does not describe the alert {suffix}"
    lock = parsed(MODULES / "storage.bicep")["resources"]["accountLock"]["config"]["config"]["name"]
    assert "az lock delete" in text and lock in text


def test_deploy_guide_says_what_was_checked_and_what_only_a_deployment_shows() -> None:
    text = guide()
    for check in ("checkov", "tests/unit/test_infra_static.py", "what-if"):
        assert check in text, check
    assert re.search(r"^#+ .*only a real deployment", text, flags=re.IGNORECASE | re.MULTILINE)
    for phrase in ("this machine", "from here", "checked here", "written here"):
        assert phrase not in text.lower(), f"docs/deploy.md speaks of where it was written: {phrase!r}"


# --- nothing points at a file that is not in the repository --------------------------------

# Files a reader makes: local.settings.json from the sample, azure.settings.json as the deploy
# guide shows (the operator tools' settings for Azure).
MADE_BY_THE_READER = frozenset({"local.settings.json", "azure.settings.json"})


def _references(text: str) -> set[str]:
    text = re.sub(r"https?://\S+", "", text)
    return set(
        re.findall(
            r"(?<![\w/.<>-])((?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.(?:md|py|bicep|json|ya?ml|txt|toml))\b", text
        )
    )


@pytest.mark.parametrize(
    "path",
    [*BICEP_FILES, PROJECT / "azure.yaml", DEPLOY_GUIDE],
    ids=lambda path: str(path.relative_to(PROJECT)),
)
def test_every_file_a_comment_or_the_guide_names_exists(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"(?<![\w.])/(?:work|tmp|home|root|Users)/", text), (
        f"{path.name} cites a file outside the repository"
    )
    missing = [
        name
        for name in sorted(_references(text))
        if name not in MADE_BY_THE_READER
        and not any((base / name).exists() for base in (PROJECT, path.parent, INFRA, MODULES))
    ]
    assert missing == [], f"{path.relative_to(PROJECT)} names files that do not exist"
