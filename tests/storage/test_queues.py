"""The push queue and its poison queue, against Azurite's queue service."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from devtools.azurite import Azurite
from sessions.settings import SettingsError, StorageConnection
from sessions.storage import MessageQueue, QueuedMessage, QueueUnavailable
from sessions.storage.connection import QUEUE_API_VERSION

CLOSED_QUEUE_ENDPOINT = "http://127.0.0.1:9/devstoreaccount1"


def unique_queue() -> str:
    return f"q-{uuid.uuid4().hex[:16]}"


def raw_client(azurite: Azurite, name: str, *, base64_text: bool = False) -> QueueClient:
    """A plain SDK client, bypassing our module: raw, or with the SDK's own base64 text policies
    (what the Functions host and other senders use with `messageEncoding: base64`)."""
    return QueueClient.from_connection_string(
        azurite.connection_string,
        name,
        api_version=QUEUE_API_VERSION,
        message_encode_policy=TextBase64EncodePolicy() if base64_text else None,
        message_decode_policy=TextBase64DecodePolicy() if base64_text else None,
    )


def eventually(condition: Callable[[], list[QueuedMessage]], timeout: float = 10) -> list[QueuedMessage]:
    """Poll `condition` until it returns something (or the time is up: then its last, empty, answer)."""
    deadline = time.monotonic() + timeout
    while not (found := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


@pytest.fixture
def queue(azurite: Azurite) -> Iterator[MessageQueue]:
    message_queue = MessageQueue.connect(
        StorageConnection(connection_string=azurite.connection_string), unique_queue()
    )
    message_queue.ensure()
    yield message_queue
    message_queue.close()


def test_a_sent_text_is_received_once_with_its_id_receipt_count_and_time(queue: MessageQueue) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    sent_id = queue.send('{"push_id": "p-1", "note": "ünïcode ✓"}')
    [message] = queue.receive(max_messages=5, visibility_timeout=30)
    assert message.id == sent_id
    assert message.text == '{"push_id": "p-1", "note": "ünïcode ✓"}'
    assert message.dequeue_count == 1 and message.pop_receipt
    assert message.inserted_at is not None and message.inserted_at >= before
    assert queue.receive() == []  # hidden from every other receiver while it is worked on
    queue.delete(message)
    assert queue.count() == 0


def test_messages_are_base64_of_utf8_as_the_functions_host_reads_them(
    azurite: Azurite, queue: MessageQueue
) -> None:
    queue.send("größe ✓")
    [stored] = raw_client(azurite, queue.name).peek_messages()
    assert stored.content == base64.b64encode("größe ✓".encode()).decode("ascii")
    # Both ways: what the SDK's policies put on a queue is read here, and what is sent here, by them.
    raw_client(azurite, queue.name, base64_text=True).send_message("von außen")
    decoded = raw_client(azurite, queue.name, base64_text=True).peek_messages(2)
    assert [message.content for message in decoded] == ["größe ✓", "von außen"]
    assert [message.text for message in queue.receive(max_messages=2)] == ["größe ✓", "von außen"]


def test_messages_never_expire(queue: MessageQueue) -> None:
    queue.send("kept")
    [message] = queue.receive()
    assert message.expires_at is not None and message.expires_at.year == 9999


def test_a_released_message_comes_back_after_the_delay_with_its_count_raised(queue: MessageQueue) -> None:
    queue.send("try again")
    [first] = queue.receive(visibility_timeout=60)
    released_at = time.monotonic()
    queue.release(first, visibility_timeout=1)
    [again] = eventually(lambda: queue.receive(visibility_timeout=60))
    assert time.monotonic() - released_at >= 0.9
    assert (again.id, again.text, again.dequeue_count) == (first.id, "try again", 2)


def test_to_poison_moves_the_text_to_the_poison_queue_and_out_of_the_queue(queue: MessageQueue) -> None:
    queue.send("hopeless")
    [message] = queue.receive()
    queue.to_poison(message)
    assert queue.count() == 0 and queue.receive() == []
    assert queue.poison_count() == 1
    assert [poisoned.text for poisoned in queue.peek_poison()] == ["hopeless"]
    assert queue.poison_count() == 1  # peeking takes nothing


def test_the_poison_queue_is_created_when_a_message_is_first_poisoned(azurite: Azurite) -> None:
    storage = StorageConnection(connection_string=azurite.connection_string)
    with MessageQueue.connect(storage, unique_queue()) as queue:
        raw_client(azurite, queue.name).create_queue()
        queue.send("first poison")
        assert queue.poison_count() == 0 and queue.peek_poison() == []  # no poison queue yet
        [message] = queue.receive()
        queue.to_poison(message)
        assert [poisoned.text for poisoned in queue.peek_poison()] == ["first poison"]


def test_a_message_that_is_not_base64_text_goes_to_the_poison_queue_unread(
    azurite: Azurite, queue: MessageQueue
) -> None:
    raw_client(azurite, queue.name).send_message("{not base64}")
    raw_client(azurite, queue.name).send_message(base64.b64encode(b"\xff\xfe not utf-8").decode("ascii"))
    queue.send("good")
    assert [message.text for message in queue.receive(max_messages=10)] == ["good"]
    assert queue.poison_count() == 2
    assert queue.peek_poison()[0].text == "{not base64}"  # as stored, for the operator to see


def test_settling_a_message_already_gone_is_no_error(queue: MessageQueue) -> None:
    queue.send("once")
    [message] = queue.receive()
    queue.delete(message)
    queue.delete(message)
    queue.release(message, visibility_timeout=0)


def test_a_peeked_message_cannot_be_settled(queue: MessageQueue) -> None:
    queue.send("look only")
    queue.to_poison(queue.receive()[0])
    [peeked] = queue.peek_poison()
    assert peeked.pop_receipt is None
    with pytest.raises(ValueError, match="no pop receipt"):
        queue.delete(peeked)


def test_a_missing_queue_has_no_messages_but_is_unhealthy(azurite: Azurite) -> None:
    storage = StorageConnection(connection_string=azurite.connection_string)
    with MessageQueue.connect(storage, unique_queue()) as queue:
        assert queue.receive() == [] and queue.count() == 0
        with pytest.raises(QueueUnavailable, match=queue.name):
            queue.check_health()
        queue.ensure()
        queue.ensure()  # again: both queues exist, nothing fails
        queue.check_health()


def test_unreachable_storage_is_queue_unavailable_within_seconds(azurite: Azurite) -> None:
    closed = azurite.connection_string.replace(azurite.queue_endpoint, CLOSED_QUEUE_ENDPOINT)
    with MessageQueue.connect(StorageConnection(connection_string=closed), unique_queue()) as queue:
        for attempt in (lambda: queue.send("x"), queue.receive, queue.check_health):
            started = time.monotonic()
            with pytest.raises(QueueUnavailable):
                attempt()
            assert time.monotonic() - started < 15


def test_a_connection_string_without_a_queue_endpoint_is_refused_not_sent_to_azure(azurite: Azurite) -> None:
    without = azurite.connection_string.replace(f"QueueEndpoint={azurite.queue_endpoint};", "")
    with pytest.raises(SettingsError, match="QueueEndpoint"):
        MessageQueue.connect(StorageConnection(connection_string=without), "pushes-to-store")


def test_development_storage_means_azurite_on_its_default_queue_port() -> None:
    storage = StorageConnection(connection_string="UseDevelopmentStorage=true")
    with MessageQueue.connect(storage, "pushes-to-store") as queue:
        assert queue.url == "http://127.0.0.1:10001/devstoreaccount1/pushes-to-store"


def test_a_managed_identity_needs_the_queue_service_uri_setting() -> None:
    identity = StorageConnection(table_service_uri="https://account.table.core.windows.net")
    with pytest.raises(SettingsError, match="SESSIONS_STORAGE__queueServiceUri"):
        MessageQueue.connect(identity, "pushes-to-store")
    assert identity.uses_identity
