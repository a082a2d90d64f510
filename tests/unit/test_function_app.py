"""function_app's own reading of a push's Content-Length, before the body: what the Functions host
hands it in Azure. (The local host refuses the same headers itself: tests/http/test_functions_host.py.)
The handler runs in this process, its receiver writing to memory."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import function_app
from sessions import receiver as receiver_module
from sessions.keys import KEY_HEADER
from sessions.settings import Settings
from tests.helpers.memory import MemoryReceiver, memory_receiver
from tests.helpers.pushes import OLD_KEY, as_body, session

BODY = as_body([session()])


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> MemoryReceiver:
    memory = memory_receiver(Settings(api_keys=(OLD_KEY,)))
    monkeypatch.setattr(receiver_module, "_current", memory.receiver)
    return memory


def push_declaring(content_length: str) -> func.HttpResponse:
    headers = {KEY_HEADER: OLD_KEY, "Content-Type": "application/json", "Content-Length": content_length}
    request = func.HttpRequest("POST", "http://127.0.0.1/api/sessions", headers=headers, body=BODY)
    response = function_app.push_sessions(request)
    assert isinstance(response, func.HttpResponse)
    return response


@pytest.mark.parametrize(
    "declared",
    [
        "12x",
        "-1",
        "0x10",
        "\N{SUPERSCRIPT TWO}",
        "\N{ARABIC-INDIC DIGIT ONE}\N{ARABIC-INDIC DIGIT TWO}",
        "9" * 5000,
    ],
    ids=["letters", "negative", "hex", "superscript-digit", "arabic-indic-digits", "5000-digits"],
)
def test_a_content_length_that_is_not_a_number_of_bytes_is_400_and_nothing_is_taken(
    memory: MemoryReceiver, declared: str
) -> None:
    response = push_declaring(declared)
    assert response.status_code == 400
    assert json.loads(response.get_body()) == {
        "error": "invalid_body",
        "message": "Content-Length is not a number",
    }
    assert memory.archive.bodies == {} and memory.store.records() == []
    (record,) = memory.records.records.values()
    assert (record.status, record.outcome) == (400, "refused")


def test_a_declared_length_over_the_limit_is_413_and_nothing_is_taken(memory: MemoryReceiver) -> None:
    response = push_declaring("99999999999")
    assert response.status_code == 413
    assert json.loads(response.get_body())["error"] == "payload_too_large"
    assert memory.archive.bodies == {} and memory.store.records() == []


def test_a_declared_length_in_ascii_digits_within_the_limit_is_taken(memory: MemoryReceiver) -> None:
    response = push_declaring(f" {len(BODY)} ")
    assert response.status_code == 200
    assert json.loads(response.get_body())["stored"] == 1
    assert len(memory.store.records()) == 1
