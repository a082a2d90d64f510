"""The dependency audit's logic, on recorded PyPI answers: it fails on a known vulnerability, and it
never passes a package it could not check. (`make audit`, a step of `make test`, runs it live.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from packaging.version import Version
from pip_audit._service import ResolvedDependency  # type: ignore[import-untyped]

from devtools.audit import PyPIWithProjectFallback, main

ADVISORY = {
    "id": "GHSA-0000-1111-2222",
    "aliases": ["CVE-2099-0001"],
    "summary": "a made-up advisory",
    "fixed_in": [],
    "published": "2025-01-01T00:00:00Z",
}


def answer(url: str, status: int, body: Any = None) -> requests.Response:
    response = requests.Response()
    response.status_code, response.url = status, url
    response._content = json.dumps(body or {}).encode()
    return response


class PyPIWithoutReleaseDocuments:
    """PyPI as a proxy may serve it: the project document, but a 404 for every per-release one."""

    def __init__(self, latest: str, vulnerabilities: list[dict[str, Any]]) -> None:
        self.latest, self.vulnerabilities = latest, vulnerabilities

    def get(self, url: str, timeout: float) -> requests.Response:
        if url.count("/") == 6:  # https://pypi.org/pypi/<name>/<version>/json
            return answer(url, 404)
        return answer(url, 200, {"info": {"version": self.latest}, "vulnerabilities": self.vulnerabilities})


def service_seeing(latest: str, vulnerabilities: list[dict[str, Any]]) -> PyPIWithProjectFallback:
    service = PyPIWithProjectFallback()
    service.session = PyPIWithoutReleaseDocuments(latest, vulnerabilities)
    return service


def test_the_latest_release_is_checked_against_the_project_document_when_no_release_one_is_served() -> None:
    release = ResolvedDependency(name="example", version=Version("2.0"))
    audited, found = service_seeing("2.0", [ADVISORY]).query(release)
    assert audited == release
    assert [{result.id, *result.aliases} for result in found] == [{"GHSA-0000-1111-2222", "CVE-2099-0001"}]


def test_an_older_release_without_data_is_unchecked_not_passed() -> None:
    audited, found = service_seeing("3.0", []).query(
        ResolvedDependency(name="example", version=Version("2.0"))
    )
    assert audited.is_skipped() and found == []
    assert "not the latest release (3.0)" in audited.skip_reason


def test_the_audit_fails_on_a_known_vulnerability(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # PyPI's answer for a release with an advisory, as recorded: the audit must fail on it.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("example==2.0\n")
    assert main([str(requirements), "--no-deps"], service=service_seeing("2.0", [ADVISORY])) == 1
    printed = capsys.readouterr().out
    assert "VULNERABLE example 2.0" in printed and "GHSA-0000-1111-2222" in printed


def test_a_package_that_cannot_be_checked_fails_the_audit_unless_named(tmp_path: Any) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("example==2.0\nlatest==3.0\n")  # the project document says 3.0 is the latest
    service = service_seeing("3.0", [])
    assert main([str(requirements), "--no-deps"], service=service) == 1
    assert main([str(requirements), "--no-deps", "--unauditable", "example"], service=service) == 0
