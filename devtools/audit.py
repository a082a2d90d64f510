"""`python -m devtools.audit requirements.txt`: pip-audit that fails on a known vulnerability, and never
passes on a package it did not check.

pip-audit asks PyPI's JSON API about each resolved release (`/pypi/<name>/<version>/json`). When
that per-release document is not served (some mirrors and proxies serve only the project's), it
skips the package and still reports "No known vulnerabilities found": a pass that checked nothing.
Here such a package is checked against the project document instead, whose `vulnerabilities` are
those of the latest release, which is exact when the pinned release is the latest. A package that
can be checked neither way fails the audit, unless it is named with --unauditable (then it is
printed as unchecked, never passed over in silence).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from packaging.version import InvalidVersion, Version
from pip_audit._audit import AuditOptions, Auditor  # type: ignore[import-untyped]
from pip_audit._dependency_source import (  # type: ignore[import-untyped]
    DependencySourceError,
    RequirementSource,
)
from pip_audit._service import (  # type: ignore[import-untyped]
    Dependency,
    PyPIService,
    ResolvedDependency,
    ServiceError,
    SkippedDependency,
    VulnerabilityResult,
)

PYPI_PROJECT = "https://pypi.org/pypi/{name}/json"


class PyPIWithProjectFallback(PyPIService):  # type: ignore[misc]
    """pip-audit's PyPI service, falling back to the project document for the latest release."""

    def __init__(self, timeout: int = 30) -> None:
        super().__init__(cache_dir=None, timeout=timeout)
        self.from_project: list[str] = []

    def query(self, spec: Dependency) -> tuple[Dependency, list[VulnerabilityResult]]:
        audited, found = super().query(spec)
        if spec.is_skipped() or not audited.is_skipped():
            return audited, found
        release = cast(ResolvedDependency, spec)
        response = self.session.get(PYPI_PROJECT.format(name=release.canonical_name), timeout=self.timeout)
        if response.status_code != 200:
            return audited, []
        project = response.json()
        latest = Version(project["info"]["version"])
        if latest != release.version:
            reason = (
                f"PyPI serves no vulnerability data for {release.name} {release.version} here, "
                f"and it is not the latest release ({latest}), whose data the project document holds"
            )
            return SkippedDependency(name=release.name, skip_reason=reason), []
        self.from_project.append(release.name)
        return release, [
            self._result(entry)
            for entry in project.get("vulnerabilities") or []
            if not entry.get("withdrawn")
        ]

    def _result(self, entry: dict[str, Any]) -> VulnerabilityResult:
        # The same reading of PyPI's vulnerability entries as pip-audit's own PyPIService.
        try:
            fixes = sorted(Version(fixed) for fixed in entry.get("fixed_in") or [])
        except InvalidVersion as error:
            raise ServiceError(f"malformed fixed_in version from PyPI: {entry.get('fixed_in')}") from error
        summary = entry.get("summary") or entry.get("details") or "N/A"
        return VulnerabilityResult.create(
            ids=[entry["id"], *(entry.get("aliases") or [])],
            description=summary.replace("\n", " "),
            fix_versions=fixes,
            published=self._parse_rfc3339(entry.get("published")),
        )


def main(argv: Sequence[str] | None = None, *, service: PyPIWithProjectFallback | None = None) -> int:
    arguments = _parser().parse_args(argv)
    service = service or PyPIWithProjectFallback()
    source = RequirementSource(
        [Path(name) for name in arguments.requirements],
        no_deps=arguments.no_deps,
        disable_pip=arguments.no_deps,
    )
    audited: list[str] = []
    unchecked: list[tuple[str, str]] = []
    findings: list[tuple[ResolvedDependency, VulnerabilityResult]] = []
    try:
        for spec, vulnerabilities in Auditor(service, options=AuditOptions(dry_run=False)).audit(source):
            if spec.is_skipped():
                unchecked.append((spec.name, cast(SkippedDependency, spec).skip_reason))
                continue
            release = cast(ResolvedDependency, spec)
            audited.append(f"{release.name}=={release.version}")
            findings.extend((release, vulnerability) for vulnerability in vulnerabilities)
    except (DependencySourceError, ServiceError, ConnectionError) as error:
        print(f"audit failed: {error}", file=sys.stderr)
        return 2

    # PyPI lists one advisory under each of its ids (PYSEC-..., GHSA-...): report it once.
    distinct: list[tuple[ResolvedDependency, VulnerabilityResult]] = []
    for release, vulnerability in findings:
        ids = vulnerability.aliases | {vulnerability.id}
        if not any(
            seen.name == release.name and ids & (known.aliases | {known.id}) for seen, known in distinct
        ):
            distinct.append((release, vulnerability))
    for release, vulnerability in distinct:
        names = ", ".join(sorted(vulnerability.aliases | {vulnerability.id}))
        fixed = ", ".join(str(version) for version in vulnerability.fix_versions) or "no fix yet"
        print(f"VULNERABLE {release.name} {release.version}: {names} (fixed in: {fixed})")
        print(f"    {vulnerability.description[:300]}")
    accepted = {name.lower() for name in arguments.unauditable}
    refused = [(name, reason) for name, reason in unchecked if name.lower() not in accepted]
    for name, reason in unchecked:
        label = "UNCHECKED (accepted with --unauditable)" if name.lower() in accepted else "UNCHECKED"
        print(f"{label} {name}: {reason}")
    print(
        f"audited {len(audited)} packages against PyPI's vulnerability data "
        f"({len(service.from_project)} through the project document), {len(unchecked)} unchecked, "
        f"{len(distinct)} known vulnerabilities"
    )
    if distinct or refused or not audited:
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", nargs="+", help="requirements files (pinned with ==)")
    parser.add_argument(
        "--unauditable",
        action="append",
        default=[],
        metavar="NAME",
        help="a package accepted as unchecked when no vulnerability data for its release can be had",
    )
    parser.add_argument(
        "--no-deps",
        action="store_true",
        help="audit only the listed pins, without resolving their dependencies",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
