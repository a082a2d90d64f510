"""The Bicep templates as data: pycep's parse (the parser checkov itself uses), and its parts."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, cast

from pycep import BicepParser

from tests.helpers import PROJECT

INFRA = PROJECT / "infra"
MAIN = INFRA / "main.bicep"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
PARAMETER_FILES = sorted(INFRA.glob("*.parameters.json"))
SAMPLE_SETTINGS = PROJECT / "local.settings.sample.json"


@cache
def parsed(path: Path) -> dict[str, Any]:
    """The pycep parse of one Bicep file (the parser checkov itself uses)."""
    return cast(dict[str, Any], BicepParser().parse(file_path=path))


def resources_of_type(resource_type: str) -> list[dict[str, Any]]:
    """The bodies of every resource of that type in every Bicep file (a conditional one unwrapped)."""
    found = []
    for path in BICEP_FILES:
        for resource in (parsed(path).get("resources") or {}).values():
            if resource["type"] != resource_type or resource["existing"]:
                continue
            body = resource["config"]
            found.append(body["config"] if "condition" in body else body)
    return found


def only(resource_type: str) -> dict[str, Any]:
    (resource,) = resources_of_type(resource_type)
    return resource


def function_app_settings() -> dict[str, Any]:
    """Name -> value of every app setting the function app is given (inline or in a config resource)."""
    settings: dict[str, Any] = {}
    for site in resources_of_type("Microsoft.Web/sites"):
        for setting in site["properties"]["siteConfig"].get("appSettings", []):
            assert setting["name"] not in settings, f"{setting['name']} is set twice"
            settings[setting["name"]] = setting["value"]
    for config in resources_of_type("Microsoft.Web/sites/config"):
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


def sample_values() -> dict[str, str]:
    values: dict[str, str] = json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8"))["Values"]
    return values
