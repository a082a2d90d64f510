"""openapi.yaml: valid OpenAPI 3.1, in step with the pydantic model and the code, and true of the server.

schemathesis generates requests from it (schema-valid and schema-violating) against
`python -m sessions serve` over real Azurite, and checks every answer against it: no 5xx, every
status, content type, header and body as described.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import jsonschema_rs
import pytest
import requests
import schemathesis
import yaml  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given
from hypothesis.strategies import SearchStrategy
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from devtools.served import ServedReceiver
from sessions.decoding import PushBody
from sessions.keys import KEY_HEADER
from sessions.model import FieldError, Session
from sessions.results import PushResult, Rejection
from tests.helpers import PROJECT
from tests.helpers.pushes import OLD_KEY, as_body

OPENAPI = PROJECT / "openapi.yaml"
# The figures docs/reliability.md quotes: generated cases per operation and generation mode.
SCHEMATHESIS_EXAMPLES = 100
_ANNOTATIONS = {"title", "description", "examples"}


def description() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return loaded


def constraints(schema: Any) -> Any:
    """A JSON Schema without its annotations (titles, descriptions): what it allows and refuses."""
    if isinstance(schema, dict):
        return {key: constraints(value) for key, value in schema.items() if key not in _ANNOTATIONS}
    if isinstance(schema, list):
        return [constraints(item) for item in schema]
    return schema


def validator_for(component: str) -> jsonschema_rs.Validator:
    root = {"$ref": f"#/components/schemas/{component}", "components": description()["components"]}
    return jsonschema_rs.Draft202012Validator(root)


def test_the_description_is_valid_openapi_3_1() -> None:
    assert description()["openapi"] == "3.1.0"
    schemathesis.openapi.from_path(OPENAPI).validate()


def test_the_session_schema_is_the_pydantic_model() -> None:
    documented = description()["components"]["schemas"]["Session"]
    assert constraints(documented) == constraints(Session.model_json_schema())


def test_a_push_result_with_rejections_fits_the_described_answer() -> None:
    body = PushBody(as_body([{"ChargerID": "C" * 300, "TransactionID": 7}, {"ChargerID": 5}]))
    first, second = list(body)
    rejection = Rejection.of(
        first,
        body.raw(first),
        (FieldError("EndAt", "must not be before StartAt"), FieldError("(storage)", "x")),
    )
    unreadable = Rejection.of(second, body.raw(second), (FieldError("(session)", "x"),))
    result = PushResult(push_id="0b7d6c1e-8f0a-4a55-9a43-4f3e2b0c9d21", received=4, stored=2, duplicates=1)
    for listed in (rejection, unreadable):
        result.add_rejection(listed)
    validator_for("PushResult").validate(result.to_json())


def error_answers_in(source: Path, *, reading: bool = False) -> set[tuple[str, str]]:
    """(status, error code) of every `_error(status, code, ...)` and `_refused(push, status, code, ...)`
    call in function_app.py, and of what is answered through a table of statuses; with `reading`,
    those of GET /api/sessions (read_sessions and its `_read_refused(started, status, code, ...)`)."""
    module = ast.parse(source.read_text(encoding="utf-8"))
    (reader,) = [node for node in module.body if getattr(node, "name", None) == "read_sessions"]
    inside_reader = {id(node) for node in ast.walk(reader)}
    found = set()
    for node in ast.walk(reader if reading else module):
        if not reading and id(node) in inside_reader:
            continue
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
            "_error",
            "_refused",
            "_read_refused",
        ):
            status, code = node.args[:2] if node.func.id == "_error" else node.args[1:3]  # type: ignore[attr-defined]
            if isinstance(status, ast.Constant) and isinstance(code, ast.Constant):
                found.add((str(status.value), str(code.value)))
    if reading:
        return found
    # _too_large() answers the first; the receiver's refusals (_REFUSAL_STATUS) and storage faults the others.
    return found | {
        ("413", "payload_too_large"),
        ("413", "too_many_sessions"),
        ("400", "invalid_body"),
        ("503", "storage_unavailable"),
    }


def test_every_error_of_the_read_endpoint_is_described_with_its_status_and_code() -> None:
    responses = description()["paths"]["/api/sessions"]["get"]["responses"]
    answers = error_answers_in(PROJECT / "function_app.py", reading=True)
    assert {"400", "401", "503"} == {status for status, _ in answers}
    for status, code in answers:
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        validator_for(ref).validate({"error": code, "message": "what and where"})
    assert set(responses) == {"200", "400", "401", "503"}


def test_every_error_the_code_answers_is_described_with_its_status_and_code() -> None:
    responses = description()["paths"]["/api/sessions"]["post"]["responses"]
    for status, code in error_answers_in(PROJECT / "function_app.py"):
        assert status in responses, status
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        validator_for(ref).validate({"error": code, "message": "what and where"})
    # 500 is the Functions host's own answer over its body limit (described, never the receiver's).
    assert set(responses) == {"200", "202", "400", "401", "413", "415", "500", "503"}
    assert (
        "content" not in responses["500"]
        and "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT" in responses["500"]["description"]
    )


Case = schemathesis.Case[Any]


READ_KEY = "openapi-read-key-6f2d"


@pytest.fixture
def receiver(serve: Callable[..., ServedReceiver]) -> ServedReceiver:
    """A receiver that also serves reads (GET /api/sessions) with READ_KEY."""
    return serve(CHARGEPILOT_READ_KEYS=READ_KEY)


@pytest.fixture
def checked_server(receiver: ServedReceiver) -> Callable[[Case], int]:
    session = requests.Session()

    def call(case: Case) -> int:
        # A push with sessions the contract rejects is still a push: 200 with its `rejected` list
        # (docs/decisions/answer-200-with-rejected-list.md), so schema-violating bodies are not
        # expected to be refused with a 4xx.
        # The read parameters have relations a query-parameter schema cannot state (a cursor goes
        # alone, date_to after date_from, a tz that exists): a schema-valid read may be a 400, which
        # must then still be the described 400 (every other check applies).
        reading = case.operation.label == "GET /api/sessions"
        response = case.call_and_validate(
            base_url=receiver.base_url,
            session=session,
            headers={KEY_HEADER: READ_KEY if reading else OLD_KEY},
            excluded_checks=[negative_data_rejection, *([positive_data_acceptance] if reading else [])],
        )
        assert response.status_code < 500
        return response.status_code

    return call


def exercise(cases: SearchStrategy[Case], call: Callable[[Case], int], answered: list[int]) -> None:
    """Send up to SCHEMATHESIS_EXAMPLES generated requests of one operation, noting each status."""

    @hypothesis.settings(
        max_examples=SCHEMATHESIS_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Case) -> None:
        answered.append(call(case))

    run()


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_5xx_and_no_answer_that_breaks_the_description(
    checked_server: Callable[[Case], int], receiver: ServedReceiver, mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_path(OPENAPI)
    statuses: dict[str, list[int]] = {}
    for found in schema.get_all_operations():
        operation = found.ok() if isinstance(found, Ok) else pytest.fail(str(found.err()))
        if mode is schemathesis.GenerationMode.NEGATIVE and operation.label.endswith("/api/health"):
            continue  # it has no input to break
        answered = statuses.setdefault(operation.label, [])
        exercise(operation.as_strategy(generation_mode=mode), checked_server, answered)
    # It really pushed: sessions were taken, and (in negative mode) bodies refused as not a push.
    assert 200 in statuses["POST /api/sessions"]
    if mode is schemathesis.GenerationMode.NEGATIVE:
        assert 400 in statuses["POST /api/sessions"]
    assert set(statuses.get("GET /api/health", [200])) == {200}
    # It really read pages; broken reads (schemathesis drops or spoils the key, too) are refused.
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert 200 in statuses["GET /api/sessions"]
    else:
        assert set(statuses["GET /api/sessions"]) <= {200, 400, 401}
    assert len(statuses["POST /api/sessions"]) >= SCHEMATHESIS_EXAMPLES // 2
    assert "Traceback" not in receiver.log
