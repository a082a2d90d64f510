"""The shape DESIGN.md asks for: HTTP only at the edge, Table Storage only in the storage modules."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
STORAGE_MODULES = {"sessions/store.py", "sessions/entities.py", "sessions/queries.py"}
HOST_MODULES = {"function_app.py", "sessions/functions_host.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def app_modules() -> list[Path]:
    return [PROJECT / "function_app.py", *sorted((PROJECT / "sessions").rglob("*.py"))]


def test_only_the_function_app_and_the_local_host_know_azure_functions() -> None:
    for path in app_modules():
        relative = path.relative_to(PROJECT).as_posix()
        if relative not in HOST_MODULES:
            assert not any(m.startswith("azure.functions") for m in imported_modules(path)), relative


def test_only_the_storage_modules_know_azure_data_tables() -> None:
    for path in app_modules():
        relative = path.relative_to(PROJECT).as_posix()
        if relative not in STORAGE_MODULES:
            assert not any(m.startswith("azure.data") for m in imported_modules(path)), relative


def test_the_function_app_reads_no_environment_itself() -> None:
    source = (PROJECT / "function_app.py").read_text(encoding="utf-8")
    assert "os.environ" not in source and "getenv" not in source
