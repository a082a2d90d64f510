"""The Bicep templates as data: pycep's parse (the parser checkov itself uses), and the checks on it
that neither pycep nor checkov makes, because they do not know what Azure accepts:

- every resource body, property by property and object by object, against the REST model of the
  same resource type and API version (the `_attribute_map`s of the azure-mgmt-* packages pinned in
  requirements-dev.txt), and every `symbol.properties...` read against the same models;
- the site properties and app settings that Flex Consumption refuses;
- the module contract: parameters passed against those declared, outputs read against those
  declared, and nothing declared that nothing uses.

Every check takes the infra folder as an argument, so that a test can run it on a copy of the
templates it broke on purpose. Nothing here reaches Azure or starts a process.
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from pycep import BicepParser

from tests.helpers import PROJECT

INFRA = PROJECT / "infra"
MAIN = INFRA / "main.bicep"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
PARAMETER_FILES = sorted(INFRA.glob("*.parameters.json"))
SAMPLE_SETTINGS = PROJECT / "local.settings.sample.json"


# --- parsing ----------------------------------------------------------------------------


@cache
def _parser() -> BicepParser:
    return BicepParser()  # building it (the grammar) takes most of the time of a parse


@cache
def _parsed_text(text: str) -> dict[str, Any]:
    return cast(dict[str, Any], _parser().parse(text=text))


def parsed(path: Path) -> dict[str, Any]:
    """The pycep parse of one Bicep file (the parser checkov itself uses), kept by content: a
    copy of the templates parses only the files a test changed."""
    return _parsed_text(path.read_text(encoding="utf-8"))


def bicep_files(infra: Path = INFRA) -> list[Path]:
    return sorted(infra.rglob("*.bicep"))


def unwrapped(config: Any) -> Any:
    """A resource or module body without its `if (...)` condition and `[for ...]` loop."""
    while (
        isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config)
    ):
        config = config["config"]
    return config


@dataclass(frozen=True)
class Resource:
    path: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.path.name}: {self.symbol} ({self.type}@{self.api_version})"


def declared_resources(infra: Path = INFRA) -> list[Resource]:
    """Every resource of every Bicep file, `existing` references included."""
    return [
        Resource(
            path,
            symbol,
            resource["type"],
            resource["api_version"],
            resource["existing"],
            unwrapped(resource["config"]),
        )
        for path in bicep_files(infra)
        for symbol, resource in (parsed(path).get("resources") or {}).items()
    ]


def resources_of_type(resource_type: str, infra: Path = INFRA) -> list[dict[str, Any]]:
    """The bodies of every resource of that type that the templates deploy (not `existing` ones)."""
    return [
        resource.body
        for resource in declared_resources(infra)
        if resource.type == resource_type and not resource.existing
    ]


def only(resource_type: str, infra: Path = INFRA) -> dict[str, Any]:
    (resource,) = resources_of_type(resource_type, infra)
    return resource


def function_app_settings(infra: Path = INFRA) -> dict[str, Any]:
    """Name -> value of every app setting the function app is given (inline or in a config resource)."""
    settings: dict[str, Any] = {}
    for site in resources_of_type("Microsoft.Web/sites", infra):
        for setting in site["properties"]["siteConfig"].get("appSettings", []):
            assert setting["name"] not in settings, f"{setting['name']} is set twice"
            settings[setting["name"]] = setting["value"]
    for config in resources_of_type("Microsoft.Web/sites/config", infra):
        if config["name"] == "appsettings":
            settings.update(config["properties"])
    return settings


def secure_parameters(path: Path) -> dict[str, dict[str, Any]]:
    parameters = parsed(path).get("parameters") or {}
    return {
        name: parameter
        for name, parameter in parameters.items()
        if any(decorator["type"] == "secure" for decorator in parameter["decorators"])
    }


def decorator(parameter: dict[str, Any], kind: str) -> Any:
    """The argument of a parameter's decorator (`allowed`, `min_length`, ...), or None."""
    for found in parameter["decorators"]:
        if found["type"] == kind:
            return found.get("argument")
    return None


def sample_values() -> dict[str, str]:
    values: dict[str, str] = json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8"))["Values"]
    return values


def code_of(path: Path) -> str:
    """A Bicep file without its comments (a `//` inside a string is kept)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    kept = []
    for line in text.splitlines():
        in_string = False
        for index, char in enumerate(line):
            if char == "'":
                in_string = not in_string
            elif not in_string and line.startswith("//", index):
                line = line[:index]
                break
        kept.append(line)
    return "\n".join(kept)


def is_expression(value: Any) -> bool:
    """pycep's form of a function call or operator, as opposed to an object literal."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    return kind in {"function", "operator"} and isinstance(inner, dict) and "type" in inner


def is_loop(value: Any) -> bool:
    return isinstance(value, dict) and "loop_type" in value and "config" in value


def accessor_path(value: Any) -> list[str]:
    """`a.b.c` as ["a", "b", "c"] (pycep nests property accessors to the right); [] if not one."""
    if isinstance(value, str):
        return [value]
    if is_expression(value) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        head, tail = accessor_path(operands["operand_1"]), accessor_path(operands["operand_2"])
        return head + tail if head and tail else []
    return []


# --- Flex Consumption deprecations ------------------------------------------------------

# Microsoft Learn, "App settings reference for Azure Functions", section "Flex Consumption plan
# deprecations" (learn.microsoft.com/azure/azure-functions/functions-app-settings
# #flex-consumption-plan-deprecations), as of its 2025-12-22 revision: site properties and app
# settings that "are deprecated and shouldn't be used when creating function app resources".
# Some are refused outright (ftpsState: ARM error 51021 on newer regional stamps), the others
# are ignored or overwritten; none belongs in these templates.
FLEX_DEPRECATED_APP_SETTINGS = frozenset(
    {
        "ENABLE_ORYX_BUILD",
        "FUNCTIONS_EXTENSION_VERSION",
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_WORKER_RUNTIME_VERSION",
        "FUNCTIONS_MAX_HTTP_CONCURRENCY",
        "FUNCTIONS_WORKER_PROCESS_COUNT",
        "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTOVERVNET",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_DNS_SERVER",
        "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
        "WEBSITE_NODE_DEFAULT_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
        "WEBSITE_VNET_ROUTE_ALL",
    }
)
# The same list's site properties, by name: it writes most as `properties.X`, though several
# (alwaysOn, ftpsState, linuxFxVersion, use32BitWorkerProcess...) live under siteConfig, so a
# name is refused at either level.
FLEX_DEPRECATED_SITE_PROPERTIES = frozenset(
    {
        "alwaysOn",
        "containerSize",
        "dnsConfiguration",
        "ftpsState",
        "isReserved",
        "IsXenon",
        "javaVersion",
        "linuxFxVersion",
        "netFrameworkVersion",
        "powerShellVersion",
        "functionAppScaleLimit",
        "preWarmedInstanceCount",
        "use32BitWorkerProcess",
        "vnetBackupRestoreEnabled",
        "vnetContentShareEnabled",
        "vnetImagePullEnabled",
        "vnetRouteAllEnabled",
        "windowsFxVersion",
    }
)


def flex_deprecation_problems(infra: Path = INFRA) -> list[str]:
    """Every site property and app setting on the Flex Consumption deprecation list."""
    refused_properties = {name.lower() for name in FLEX_DEPRECATED_SITE_PROPERTIES}
    refused_settings = {name.upper() for name in FLEX_DEPRECATED_APP_SETTINGS}
    problems = []
    for site in resources_of_type("Microsoft.Web/sites", infra):
        properties = site.get("properties") or {}
        site_config = properties.get("siteConfig") or {}
        for level, values in (("properties", properties), ("properties.siteConfig", site_config)):
            problems += [
                f"{level}.{name}" for name in values if name.strip("'").lower() in refused_properties
            ]
    for config in resources_of_type("Microsoft.Web/sites/config", infra):
        values = config.get("properties") or {}
        if config["name"] == "web":
            problems += [f"sites/config web: {name}" for name in values if name.lower() in refused_properties]
    problems += [
        f"app setting {name}" for name in function_app_settings(infra) if name.upper() in refused_settings
    ]
    return problems


# --- REST models ------------------------------------------------------------------------


@dataclass(frozen=True)
class RestModel:
    """Where the models of one resource type and API version are, and which class is its body.

    `read` is the class of what a GET returns, when it differs from the body a PUT takes (a
    storage account's endpoints exist only on what Azure returns).
    """

    module: str
    body: str
    read: str | None = None


_WEB = "azure.mgmt.web.v2024_04_01.models"
_STORAGE = "azure.mgmt.storage.v2023_05_01.models"
_APPLICATION_INSIGHTS = "azure.mgmt.applicationinsights"
# Each resource type and API version the templates use, and its REST model in the pinned
# azure-mgmt-* packages. A resource whose type or API version is missing here fails the type
# check: bump a version together with the package that has its models.
REST_MODELS: dict[tuple[str, str], RestModel] = {
    ("Microsoft.Web/serverfarms", "2024-04-01"): RestModel(_WEB, "AppServicePlan"),
    ("Microsoft.Web/sites", "2024-04-01"): RestModel(_WEB, "Site"),
    ("Microsoft.Web/sites/basicPublishingCredentialsPolicies", "2024-04-01"): RestModel(
        _WEB, "CsmPublishingCredentialsPoliciesEntity"
    ),
    ("Microsoft.Storage/storageAccounts", "2023-05-01"): RestModel(
        _STORAGE, "StorageAccountCreateParameters", read="StorageAccount"
    ),
    ("Microsoft.Storage/storageAccounts/blobServices", "2023-05-01"): RestModel(
        _STORAGE, "BlobServiceProperties"
    ),
    ("Microsoft.Storage/storageAccounts/blobServices/containers", "2023-05-01"): RestModel(
        _STORAGE, "BlobContainer"
    ),
    (
        "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies",
        "2023-05-01",
    ): RestModel(_STORAGE, "ImmutabilityPolicy"),
    ("Microsoft.Storage/storageAccounts/tableServices", "2023-05-01"): RestModel(
        _STORAGE, "TableServiceProperties"
    ),
    ("Microsoft.Storage/storageAccounts/tableServices/tables", "2023-05-01"): RestModel(_STORAGE, "Table"),
    ("Microsoft.Storage/storageAccounts/queueServices", "2023-05-01"): RestModel(
        _STORAGE, "QueueServiceProperties"
    ),
    ("Microsoft.Storage/storageAccounts/queueServices/queues", "2023-05-01"): RestModel(
        _STORAGE, "StorageQueue"
    ),
    ("Microsoft.Storage/storageAccounts/managementPolicies", "2023-05-01"): RestModel(
        _STORAGE, "ManagementPolicy"
    ),
    ("Microsoft.KeyVault/vaults", "2023-07-01"): RestModel(
        "azure.mgmt.keyvault.v2023_07_01.models", "VaultCreateOrUpdateParameters", read="Vault"
    ),
    ("Microsoft.KeyVault/vaults/secrets", "2023-07-01"): RestModel(
        "azure.mgmt.keyvault.v2023_07_01.models", "SecretCreateOrUpdateParameters", read="Secret"
    ),
    ("Microsoft.ManagedIdentity/userAssignedIdentities", "2023-01-31"): RestModel(
        "azure.mgmt.msi.v2023_01_31.models", "Identity"
    ),
    ("Microsoft.Authorization/roleAssignments", "2022-04-01"): RestModel(
        "azure.mgmt.authorization.v2022_04_01.models", "RoleAssignmentCreateParameters", read="RoleAssignment"
    ),
    ("Microsoft.Authorization/locks", "2020-05-01"): RestModel(
        "azure.mgmt.resource.locks.models", "ManagementLockObject"
    ),
    ("Microsoft.OperationalInsights/workspaces", "2025-07-01"): RestModel(
        "azure.mgmt.loganalytics.models", "Workspace"
    ),
    ("Microsoft.Insights/components", "2020-02-02"): RestModel(
        f"{_APPLICATION_INSIGHTS}.v2020_02_02.models", "ApplicationInsightsComponent"
    ),
    ("Microsoft.Insights/webtests", "2022-06-15"): RestModel(
        f"{_APPLICATION_INSIGHTS}.v2022_06_15.models", "WebTest"
    ),
    ("Microsoft.Insights/actionGroups", "2023-01-01"): RestModel(
        "azure.mgmt.monitor.v2023_01_01.models", "ActionGroupResource"
    ),
    ("Microsoft.Insights/metricAlerts", "2018-03-01"): RestModel(
        "azure.mgmt.monitor.v2018_03_01.models", "MetricAlertResource"
    ),
    ("Microsoft.Insights/scheduledQueryRules", "2022-08-01-preview"): RestModel(
        "azure.mgmt.monitor.v2022_08_01_preview.models", "ScheduledQueryRuleResource"
    ),
    ("Microsoft.Insights/diagnosticSettings", "2021-05-01-preview"): RestModel(
        "azure.mgmt.monitor.v2021_05_01_preview.models", "DiagnosticSettingsResource"
    ),
    ("Microsoft.EventGrid/systemTopics", "2025-02-15"): RestModel(
        "azure.mgmt.eventgrid.models", "SystemTopic"
    ),
    ("Microsoft.EventGrid/systemTopics/eventSubscriptions", "2025-02-15"): RestModel(
        "azure.mgmt.eventgrid.models", "EventSubscription"
    ),
}

# What a Bicep resource body holds besides the REST body: where it goes and what it waits for.
BICEP_KEYWORDS = frozenset({"name", "parent", "scope", "dependsOn"})
# Every resource has these, whatever its model says (and its id is what `existing` is for).
ALWAYS_READABLE = frozenset({"id", "name", "type", "apiVersion", "location"})
# The msrest types that are not models (anything else names a model class of the same module).
_PRIMITIVES = frozenset(
    {
        "str",
        "int",
        "long",
        "float",
        "bool",
        "decimal",
        "iso-8601",
        "rfc-1123",
        "unix-time",
        "duration",
        "date",
        "time",
        "base64",
        "bytearray",
    }
)


@dataclass(frozen=True)
class Leaf:
    """One REST property: its msrest type and whether only Azure sets it."""

    type: str
    readonly: bool


@dataclass
class Level:
    """One JSON object of a REST body: its properties, and whether it takes others too."""

    children: dict[str, Leaf | Level]
    open: bool = False


def _models(module: str) -> ModuleType:
    return importlib.import_module(module)


def _model_class(models: ModuleType, name: str) -> type[Any]:
    found = getattr(models, name, None)
    if found is None:
        raise LookupError(f"{models.__name__} has no model {name}")
    return cast(type[Any], found)


def _rest_key_path(key: str) -> list[str]:
    """msrest's flattened key ("properties.serverFarmId", "odata\\.type") as its JSON path."""
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", key)]


def model_level(model: type[Any]) -> Level:
    """The JSON shape of a model: its `_attribute_map` unflattened into nested levels."""
    validation: dict[str, dict[str, Any]] = getattr(model, "_validation", {})
    root = Level({})
    for attribute, spec in model._attribute_map.items():
        if spec["key"] == "":  # additional_properties: any other key is accepted here
            root.open = True
            continue
        *parents, last = _rest_key_path(spec["key"])
        level = root
        for part in parents:
            child = level.children.setdefault(part, Level({}))
            assert isinstance(child, Level), f"{model.__name__}: {part} is both a property and an object"
            level = child
        level.children[last] = Leaf(spec["type"], bool(validation.get(attribute, {}).get("readonly")))
    return root


def _discriminated(model: type[Any], value: dict[str, Any], models: ModuleType) -> type[Any] | None:
    """The subclass a polymorphic model's discriminator picks; None if the value does not say."""
    # A subclass inherits its base's map: only a class's own map chooses among its subclasses.
    subtypes: dict[str, dict[str, str]] = vars(model).get("_subtype_map") or {}
    for attribute, choices in subtypes.items():
        (key,) = _rest_key_path(model._attribute_map[attribute]["key"])
        chosen = value.get(key, value.get(f"'{key}'"))
        if not isinstance(chosen, str):
            return None
        if chosen not in choices:
            raise LookupError(f"{key} '{chosen}' is none of {sorted(choices)}")
        return _discriminated(_model_class(models, choices[chosen]), value, models)
    return model


def _alternatives(value: Any) -> Iterator[Any]:
    """The values an expression can take that are written out in it (conditional branches,
    coalesce operands, union arguments); other expressions are Azure's to evaluate."""
    if is_expression(value):
        kind, inner = next(iter(value.items()))
        if kind == "operator" and inner["type"] in {"conditional", "coalesce"}:
            for name, operand in inner["operands"].items():
                if name != "condition":
                    yield from _alternatives(operand)
        elif kind == "function" and inner["type"] == "union":
            for argument in inner["parameters"].values():
                yield from _alternatives(argument)
        return
    yield value


def _loop_names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if is_loop(value):
            detail = value["loop_type"]["detail"]
            yield from (detail[key] for key in ("item_name", "index_name") if detail.get(key))
        for item in value.values():
            yield from _loop_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from _loop_names(item)


def symbols(path: Path) -> frozenset[str]:
    """The names an expression of this file can use: parameters, variables, resources, modules
    and loop variables. pycep writes a reference to one as a bare string, like a string literal."""
    tree = parsed(path)
    declared = [
        name for kind in ("parameters", "variables", "resources", "modules") for name in tree.get(kind) or {}
    ]
    return frozenset(declared) | frozenset(_loop_names(tree))


class TypeCheck:
    """Checks Bicep values against the REST models of one module of azure-mgmt models."""

    def __init__(self, models: ModuleType, where: str, references: frozenset[str]) -> None:
        self.models = models
        self.where = where
        self.references = references
        self.problems: list[str] = []

    def is_reference(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.references

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{self.where}: {path}: {message}")

    def value(self, value: Any, type_name: str, path: str) -> None:
        for candidate in _alternatives(value):
            self._one_value(candidate, type_name, path)

    def _one_value(self, value: Any, type_name: str, path: str) -> None:
        if is_expression(value) or self.is_reference(value):
            return
        if is_loop(value):  # [for ...]: each item is the loop's body
            if not type_name.startswith("["):
                self.fail(path, f"a [for ...] list where the REST model has {type_name}")
            else:
                self.value(value["config"], type_name[1:-1], f"{path}[]")
            return
        if type_name.startswith("[") and type_name.endswith("]"):
            if not isinstance(value, list):
                self.fail(path, f"expected a list ({type_name})")
                return
            for index, item in enumerate(value):
                self.value(item, type_name[1:-1], f"{path}[{index}]")
        elif type_name.startswith("{") and type_name.endswith("}"):
            if not isinstance(value, dict):
                self.fail(path, f"expected an object ({type_name})")
                return
            for key, item in value.items():
                self.value(item, type_name[1:-1], f"{path}.{key.strip(chr(39))}")
        elif type_name == "object":
            return
        elif type_name in _PRIMITIVES:
            if isinstance(value, dict | list):
                self.fail(
                    path,
                    f"expected a {type_name}, found an {'object' if isinstance(value, dict) else 'array'}",
                )
        else:
            if not isinstance(value, dict):
                self.fail(path, f"expected an object ({type_name})")
                return
            self.model(value, _model_class(self.models, type_name), path)

    def model(
        self, value: dict[str, Any], model: type[Any], path: str, allowed: frozenset[str] = frozenset()
    ) -> None:
        try:
            chosen = _discriminated(model, value, self.models)
        except LookupError as error:
            self.fail(path, str(error))
            return
        if chosen is None:  # the discriminator is computed: only Azure knows the shape
            return
        self.level(value, model_level(chosen), path, allowed)

    def level(
        self, value: dict[str, Any], level: Level, path: str, allowed: frozenset[str] = frozenset()
    ) -> None:
        for raw_key, item in value.items():
            key = raw_key.strip("'")
            here = f"{path}.{key}" if path else key
            node = level.children.get(key)
            if node is None:
                if key not in allowed and not level.open:
                    near = difflib.get_close_matches(key, level.children, n=1, cutoff=0.6)
                    hint = (
                        f"did you mean {near[0]}?" if near else f"it has {', '.join(sorted(level.children))}"
                    )
                    self.fail(here, f"not a property of the REST model here ({hint})")
                continue
            if isinstance(node, Level):
                for candidate in _alternatives(item):
                    if isinstance(candidate, dict) and not is_expression(candidate):
                        self.level(candidate, node, here)
                    elif not is_expression(candidate) and not self.is_reference(candidate):
                        self.fail(here, "expected an object")
                continue
            if node.readonly and key != "name":
                self.fail(here, "read-only: Azure sets it, a template cannot")
            self.value(item, node.type, here)


def rest_model(resource: Resource) -> RestModel | None:
    return REST_MODELS.get((resource.type, resource.api_version))


def type_problems(infra: Path = INFRA) -> list[str]:
    """Every property of every deployed resource body that its REST model does not have there."""
    problems = []
    for resource in declared_resources(infra):
        model = rest_model(resource)
        if model is None:
            problems.append(f"{resource.where}: no REST model of this type and API version in REST_MODELS")
            continue
        if resource.existing:
            continue
        models = _models(model.module)
        check = TypeCheck(models, resource.where, symbols(resource.path))
        check.model(resource.body, _model_class(models, model.body), "", allowed=BICEP_KEYWORDS)
        problems += check.problems
    return problems


def _read_level(model: RestModel) -> tuple[ModuleType, Level]:
    models = _models(model.module)
    return models, model_level(_model_class(models, model.read or model.body))


def property_read_problems(infra: Path = INFRA) -> list[str]:
    """Every `symbol.a.b` read of a resource's properties that its REST model does not have."""
    problems = []
    for path in bicep_files(infra):
        symbols = {
            resource.symbol: resource for resource in declared_resources(infra) if resource.path == path
        }
        for match in re.finditer(r"(?<![\w.])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)", code_of(path)):
            resource = symbols.get(match.group(1))
            steps = match.group(2).split(".")[1:]
            if resource is None or steps[0] in ALWAYS_READABLE:
                continue
            model = rest_model(resource)
            if model is None:
                continue  # type_problems reports it
            models, level = _read_level(model)
            problem = _walk(models, level, steps)
            if problem:
                problems.append(f"{path.name}: {match.group(0)}: {problem}")
    return problems


def _walk(models: ModuleType, level: Level, steps: list[str]) -> str | None:
    node: Leaf | Level = level
    for index, step in enumerate(steps):
        if isinstance(node, Leaf):
            if node.type in _PRIMITIVES or node.type.startswith(("[", "{")) or node.type == "object":
                return (
                    None
                    if node.type.startswith("{") or node.type == "object"
                    else f"{step}: {node.type} has no members"
                )
            node = model_level(_model_class(models, node.type))
        assert isinstance(node, Level)
        found = node.children.get(step)
        if found is None:
            return None if node.open else f"{'.'.join(steps[: index + 1])} is not in the REST model"
        node = found
    return None


# --- module contract --------------------------------------------------------------------


def _declaration_free_code(path: Path) -> str:
    """The code of a file less its param/var/output declarations' names and its decorators."""
    lines = []
    for line in code_of(path).splitlines():
        stripped = line.strip()
        if stripped.startswith("@"):
            continue
        lines.append(re.sub(r"^\s*(param|var|output)\s+\w+", "", line))
    return "\n".join(lines)


def module_contract_problems(infra: Path = INFRA) -> list[str]:
    """Modules called with exactly their parameters, and read only for outputs they declare;
    every parameter, variable and module output used somewhere."""
    problems = []
    used_outputs: dict[Path, set[str]] = {}
    for path in bicep_files(infra):
        tree = parsed(path)
        code = code_of(path)
        for symbol, module in (tree.get("modules") or {}).items():
            target = (path.parent / module["detail"]["path"]).resolve()
            where = f"{path.name}: module {symbol} ({module['detail']['path']})"
            if not target.is_file():
                problems.append(f"{where}: no such file")
                continue
            declared = parsed(target).get("parameters") or {}
            passed = set(unwrapped(module["config"]).get("params") or {})
            problems += [
                f"{where}: passes {name}, which the module does not declare"
                for name in sorted(passed - set(declared))
            ]
            required = {name for name, parameter in declared.items() if parameter["default"] is None}
            problems += [f"{where}: does not pass required {name}" for name in sorted(required - passed)]
            outputs = set(parsed(target).get("outputs") or {})
            read = set(re.findall(rf"\b{symbol}\.outputs\.(\w+)", code))
            problems += [
                f"{where}: reads output {name}, which the module does not declare"
                for name in sorted(read - outputs)
            ]
            used_outputs.setdefault(target, set()).update(read)
        body = _declaration_free_code(path)
        for kind in ("parameters", "variables"):
            for name, declaration in (tree.get(kind) or {}).items():
                if kind == "parameters" and decorator(declaration, "allowed") == [True]:
                    continue  # a check: its only use is to be refused when false (names.bicep)
                if not re.search(rf"(?<![\w.]){name}\b", body):
                    problems.append(f"{path.name}: {kind[:-1]} {name} is declared but never used")
    for path in bicep_files(infra):
        if path.name == "main.bicep":
            continue  # its outputs are for azd and the deploy guide
        unused = set(parsed(path).get("outputs") or {}) - used_outputs.get(path.resolve(), set())
        problems += [f"{path.name}: output {name} is never read" for name in sorted(unused)]
    return problems
