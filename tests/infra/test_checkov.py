"""checkov over infra/: no failed check, no parse error, and a reason beside every skip.

checkov runs from its own virtual environment (.venv-checkov, set up by `make setup`), offline.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PROJECT
from tests.helpers.bicep import INFRA

CHECKOV_BIN = Path(os.environ.get("CHECKOV_BIN", PROJECT / ".venv-checkov" / "bin" / "checkov"))
# A checkov run that checked almost nothing must not pass: the templates yield about 26 passes.
MIN_CHECKOV_PASSED = 20


def run_checkov() -> dict[str, Any]:
    if not CHECKOV_BIN.is_file():
        pytest.fail(
            f"checkov not found at {CHECKOV_BIN}: create it with "
            "`python3 -m venv .venv-checkov && .venv-checkov/bin/pip install -r requirements-checkov.txt` "
            "(or set CHECKOV_BIN)"
        )
    offline = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    completed = subprocess.run(
        [str(CHECKOV_BIN), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        env=offline,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov printed no JSON report (exit {completed.returncode}): {completed.stderr[-3000:]}"
        )
    # One framework gives one report object; several give a list of them.
    (bicep_report,) = [report] if isinstance(report, dict) else report
    assert completed.returncode == 0, f"checkov exited {completed.returncode}: {completed.stderr[-3000:]}"
    result: dict[str, Any] = bicep_report
    return result


@cache
def checkov_report() -> dict[str, Any]:
    return run_checkov()


def test_checkov_finds_no_failed_check_and_no_parse_error() -> None:
    summary = checkov_report()["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["failed"] == 0, [
        (check["check_id"], check["resource"], check["file_path"])
        for check in checkov_report()["results"]["failed_checks"]
    ]
    assert summary["passed"] >= MIN_CHECKOV_PASSED, summary


def test_every_checkov_skip_states_its_reason() -> None:
    for check in checkov_report()["results"].get("skipped_checks", []):
        reason = check["check_result"].get("suppress_comment", "")
        where = f"{check['check_id']} on {check['resource']}"
        assert len(reason.strip()) >= 20, f"{where} is skipped without a reason"
