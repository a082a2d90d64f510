"""The deploy line and the layers, by folder: what is published runs, and knows only what it may.

- Published (what .funcignore lets through): function_app.py and the sessions package. Every
  published module is imported when function_app is, and none imports the tools.
- Only function_app.py and the local host (tools/host.py) import azure.functions.
- Only sessions/storage imports the storage SDKs (tables, blobs, queues, identity, azure-core).
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path, PurePosixPath

from tests.helpers import PROJECT

STORAGE_SDKS = ("azure.data", "azure.storage", "azure.identity", "azure.core")
FUNCTIONS_SDK = "azure.functions"
MAY_IMPORT_FUNCTIONS = {"function_app.py", "tools/host.py"}


def funcignore_patterns() -> list[str]:
    lines = (PROJECT / ".funcignore").read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def is_published(relative: str, patterns: list[str]) -> bool:
    """Whether `func azure functionapp publish` would upload this file (.funcignore is gitignore-like)."""
    parts = PurePosixPath(relative).parts
    for pattern in patterns:
        if "/" in pattern:
            if any(fnmatch.fnmatch("/".join(parts[:end]), pattern) for end in range(1, len(parts) + 1)):
                return False
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return False
    return True


def python_files() -> list[str]:
    return sorted(
        path.relative_to(PROJECT).as_posix()
        for path in PROJECT.rglob("*.py")
        if not {".venv", "node_modules", ".venv-checkov"} & set(path.relative_to(PROJECT).parts)
    )


def published_files() -> list[str]:
    patterns = funcignore_patterns()
    return [relative for relative in python_files() if is_published(relative, patterns)]


def module_name(relative: str) -> str:
    dotted = relative.removesuffix(".py").replace("/", ".")
    return dotted.removesuffix(".__init__")


def imports_of(relative: str, *, module_level_only: bool = False) -> set[str]:
    """The modules a file imports (at module level only, or anywhere in it)."""
    tree = ast.parse((PROJECT / relative).read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # `from sessions.storage import archive` imports the module sessions.storage.archive.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_with_function_app() -> set[str]:
    """The project's modules that importing function_app imports (module-level imports, followed)."""
    known = {module_name(relative): relative for relative in python_files()}
    seen: set[str] = set()
    todo = ["function_app"]
    while todo:
        module = todo.pop()
        if module in seen or module not in known:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:end]) for end in range(1, len(parts)))  # parent packages
        todo.extend(imports_of(known[module], module_level_only=True))
    return seen


def test_the_published_code_is_function_app_and_the_sessions_package() -> None:
    published = published_files()
    assert "function_app.py" in published
    assert {relative.split("/")[0] for relative in published} == {"function_app.py", "sessions"}
    assert "sessions/__main__.py" not in published  # the command line is the tools'


def test_every_published_module_is_imported_when_function_app_is() -> None:
    imported = imported_with_function_app()
    for relative in published_files():
        if relative.endswith(("__init__.py", "__main__.py")):
            continue
        assert module_name(relative) in imported, f"{relative} is published but never runs in Azure"


def test_nothing_published_imports_the_tools_or_the_devtools() -> None:
    for relative in published_files():
        for module in imports_of(relative):
            assert not module.startswith(("tools", "devtools", "tests")), f"{relative} imports {module}"


def test_only_the_function_app_and_the_local_host_know_azure_functions() -> None:
    for relative in python_files():
        if relative in MAY_IMPORT_FUNCTIONS or relative.startswith("tests/"):
            continue
        for module in imports_of(relative):
            assert not module.startswith(FUNCTIONS_SDK), f"{relative} imports {module}"


def test_only_the_storage_package_knows_the_storage_sdks() -> None:
    for relative in published_files() + [f for f in python_files() if f.startswith("tools/")]:
        if relative.startswith("sessions/storage/"):
            continue
        for module in imports_of(relative):
            assert not module.startswith(STORAGE_SDKS), f"{relative} imports {module}"


def test_the_function_app_reads_no_environment_itself() -> None:
    source = (PROJECT / "function_app.py").read_text(encoding="utf-8")
    assert "os.environ" not in source and "getenv" not in source


def test_the_funcignore_reading_follows_gitignore_rules() -> None:
    patterns = ["tools", "sessions/__main__.py", "*.md", ".venv-*"]
    assert not is_published("tools/host.py", patterns)
    assert not is_published("sessions/__main__.py", patterns)
    assert not is_published("docs/http-api.md", patterns)
    assert not is_published(".venv-checkov/lib/x.py", patterns)
    assert is_published("sessions/storage/tables.py", patterns)
    assert is_published(str(Path("function_app.py")), patterns)
