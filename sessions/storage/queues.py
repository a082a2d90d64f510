"""Storage queues: where a push waits to be finished in the background, and where it ends if it can't be.

A queue-triggered function of this app (and, locally, `python -m sessions serve`, which stands in
for the Functions host) takes messages from a queue; a message that fails `maxDequeueCount` times
goes to the queue's poison queue, `<name>-poison`, for an operator. Messages are base64 of UTF-8
text, as the Functions host reads them with host.json's `"messageEncoding": "base64"`.

A message never expires in either queue (the service's default would drop it after 7 days): a
push that waited out a long outage is still there to be finished.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from sessions.settings import Setting, StorageConnection
from sessions.storage.connection import StorageUnavailable, queue_service, storage_errors

log = logging.getLogger(__name__)

POISON_SUFFIX = "-poison"
# A message's time to live: -1 is "never expires" (API version 2017-07-29 and later).
NEVER_EXPIRES = -1
# The most messages one receive or peek may return (the service's limit).
MAX_MESSAGES_PER_CALL = 32
# The service's error codes for "it was already deleted, or someone else holds it now".
_GONE_CODES = {"MessageNotFound", "QueueNotFound", "PopReceiptMismatch", "QueueBeingDeleted"}
_ENCODE = TextBase64EncodePolicy()


class QueueUnavailable(StorageUnavailable):
    """A queue could not be reached: what was to be sent is not in it, and a retry is safe."""


@dataclass(frozen=True)
class QueuedMessage:
    """One message as received (or peeked: then without a pop receipt) from a queue."""

    id: str
    text: str
    dequeue_count: int
    pop_receipt: str | None
    inserted_at: datetime | None
    expires_at: datetime | None = None
    next_visible_at: datetime | None = None


class MessageQueue:
    """One storage queue and its poison queue: send, receive, settle, and look at the poison."""

    def __init__(self, service: QueueServiceClient, name: str) -> None:
        self._service = service
        self.name = name
        self.poison_name = name + POISON_SUFFIX
        # Text goes out base64-encoded by the SDK's own policy; what comes in is decoded here,
        # message by message, so that one undecodable message cannot block the others.
        self._queue: QueueClient = service.get_queue_client(name, message_encode_policy=_ENCODE)
        self._poison: QueueClient = service.get_queue_client(self.poison_name)

    @classmethod
    def connect(
        cls, storage: StorageConnection, name: str, *, setting: str = Setting.STORAGE
    ) -> MessageQueue:
        """The queue `name` of the account in `storage` (configured in app setting `setting`).

        Makes no request yet. Raises SettingsError when no queue endpoint is configured.
        """
        return cls(queue_service(storage, setting), name)

    @property
    def url(self) -> str:
        """Where the queue is, without any SAS token: for logs, and to see which endpoint is used."""
        return str(self._queue.url).split("?", 1)[0]  # never a SAS token

    def close(self) -> None:
        self._service.close()

    def __enter__(self) -> MessageQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ensure(self) -> None:
        """Create the queue and its poison queue when missing.

        Only for a connection string (Azurite): in Azure, Bicep creates both, and the managed
        identity may not create queues (callers skip this when `storage.uses_identity`).
        """
        for queue in (self._queue, self._poison):
            with (
                self._errors(f"cannot create queue {queue.queue_name}"),
                contextlib.suppress(ResourceExistsError),
            ):
                queue.create_queue()

    def check_health(self) -> None:
        """Raise QueueUnavailable unless the queue exists and can be reached (reads no message)."""
        with self._errors(f"queue {self.name}"):
            self._queue.get_queue_properties()

    def send(self, text: str) -> str:
        """Put `text` on the queue (never expiring); return the message id."""
        with self._errors(f"cannot send to queue {self.name}"):
            sent = self._queue.send_message(text, time_to_live=NEVER_EXPIRES)
        return str(sent.id)

    def receive(self, max_messages: int = 1, visibility_timeout: float = 600) -> list[QueuedMessage]:
        """Up to `max_messages` (at most 32) messages, each hidden from others for `visibility_timeout` s.

        A message that is not base64 of UTF-8 text (not written by `send`, nor by any sender the
        Functions host could read) goes to the poison queue at once, as the host does, and is not
        returned. A queue that does not exist has no messages, as for the host's listener.
        """
        count = max(1, min(max_messages, MAX_MESSAGES_PER_CALL))
        received = []
        with self._errors(f"cannot receive from queue {self.name}"):
            try:
                pages = self._queue.receive_messages(
                    messages_per_page=count,
                    max_messages=count,
                    visibility_timeout=_whole_seconds(visibility_timeout, minimum=1),
                )
                received = list(pages)
            except ResourceNotFoundError:
                return []
        messages = []
        for raw in received:
            text = _decoded(raw.content)
            if text is None:
                self._poison_undecodable(raw)
            else:
                messages.append(_message(raw, text))
        return messages

    def delete(self, message: QueuedMessage) -> None:
        """Remove a received message (done with). One already gone, or taken over, is left alone."""
        with self._errors(f"cannot delete message {message.id} from queue {self.name}"), _unless_gone():
            self._queue.delete_message(message.id, _receipt_of(message))

    def release(self, message: QueuedMessage, visibility_timeout: float) -> None:
        """Make a received message visible again in `visibility_timeout` s (a failed attempt: retry later)."""
        with self._errors(f"cannot release message {message.id} in queue {self.name}"), _unless_gone():
            self._queue.update_message(
                message.id,
                _receipt_of(message),
                visibility_timeout=_whole_seconds(visibility_timeout, minimum=0),
            )

    def to_poison(self, message: QueuedMessage) -> None:
        """Move a received message to the poison queue (its text unchanged), then delete it here.

        The copy comes first: a failure in between leaves the message in both queues, never in none.
        """
        self._send_to_poison(_ENCODE.encode(message.text))
        self.delete(message)

    def oldest_waiting(self) -> datetime | None:
        """When the oldest message that waits to be taken (visible) was put on the queue, or None
        when none waits; a message being worked on is hidden, and not seen here."""
        with self._errors(f"cannot read queue {self.name}"):
            try:
                peeked = self._queue.peek_messages(max_messages=1)
            except ResourceNotFoundError:
                return None
        return peeked[0].inserted_on if peeked else None

    def count(self) -> int:
        """About how many messages wait in the queue (the service's approximate count)."""
        return self._approximate_count(self._queue)

    def poison_count(self) -> int:
        """About how many messages wait in the poison queue (0 when there is none)."""
        return self._approximate_count(self._poison)

    def peek_poison(self, limit: int = MAX_MESSAGES_PER_CALL) -> list[QueuedMessage]:
        """The oldest messages of the poison queue (at most 32), for an operator; nothing is taken."""
        with self._errors(f"cannot read queue {self.poison_name}"):
            try:
                peeked = self._poison.peek_messages(max_messages=max(1, min(limit, MAX_MESSAGES_PER_CALL)))
            except ResourceNotFoundError:
                return []
        # An undecodable message shows as it is stored: that is what the operator has to look at.
        return [_message(raw, _decoded(raw.content) or str(raw.content)) for raw in peeked]

    def _approximate_count(self, queue: QueueClient) -> int:
        with self._errors(f"cannot read queue {queue.queue_name}"):
            try:
                return int(queue.get_queue_properties().approximate_message_count or 0)
            except ResourceNotFoundError:
                return 0

    def _poison_undecodable(self, raw: Any) -> None:
        log.warning(
            "message %s of queue %s is not base64 of UTF-8 text: moved to %s",
            raw.id,
            self.name,
            self.poison_name,
        )
        self._send_to_poison(str(raw.content))
        with self._errors(f"cannot delete message {raw.id} from queue {self.name}"), _unless_gone():
            self._queue.delete_message(raw.id, raw.pop_receipt)

    def _send_to_poison(self, encoded: str) -> None:
        """Send already-encoded text to the poison queue, creating it first if it is missing."""
        with self._errors(f"cannot send to queue {self.poison_name}"):
            try:
                self._poison.send_message(encoded, time_to_live=NEVER_EXPIRES)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    self._poison.create_queue()
                self._poison.send_message(encoded, time_to_live=NEVER_EXPIRES)

    @staticmethod
    def _errors(what: str) -> contextlib.AbstractContextManager[None]:
        return storage_errors(what, QueueUnavailable)


@contextlib.contextmanager
def _unless_gone() -> Iterator[None]:
    """Ignore "already deleted" and "taken over by someone else", as the Functions host does."""
    try:
        yield
    except HttpResponseError as error:
        code = getattr(error, "error_code", None)
        if str(getattr(code, "value", code)) not in _GONE_CODES:
            raise
        log.debug("queue message already gone or taken over: %s", code)


def _receipt_of(message: QueuedMessage) -> str:
    if message.pop_receipt is None:
        raise ValueError(f"message {message.id} was peeked, not received: it has no pop receipt")
    return message.pop_receipt


def _decoded(content: object) -> str | None:
    """The text of a base64-of-UTF-8 message body, or None when it is not one (strictly, as .NET)."""
    if not isinstance(content, str):
        return None
    try:
        return base64.b64decode(content, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _message(raw: Any, text: str) -> QueuedMessage:
    return QueuedMessage(
        id=str(raw.id),
        text=text,
        dequeue_count=int(raw.dequeue_count or 0),
        pop_receipt=raw.pop_receipt,
        inserted_at=raw.inserted_on,
        expires_at=raw.expires_on,
        next_visible_at=raw.next_visible_on,
    )


def _whole_seconds(seconds: float, *, minimum: int) -> int:
    """The service takes whole seconds; round up so that a wait is never shorter than asked."""
    whole = int(seconds) + (seconds > int(seconds))
    return max(minimum, whole)
