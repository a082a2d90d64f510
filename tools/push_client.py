"""Acting as ChargePilot: POST a push to any endpoint with the API key, and read the answer.

Uses only the standard library (urllib), so the tools need no HTTP client of their own. The
key goes in the `Ocp-Apim-Subscription-Key` header and nowhere else: never in a message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from urllib.parse import urlsplit

from sessions.keys import KEY_HEADER

DEFAULT_TIMEOUT_SECONDS = 60.0
# What ChargePilot sends with every push.
_HEADERS = {"Content-Type": "application/json", "User-Agent": "chargepilot-push-simulator"}


class PushStatus(IntEnum):
    """Exit statuses of `python -m sessions push`."""

    TAKEN = 0  # 2xx, no session rejected
    NOT_TAKEN = 1  # a non-2xx answer, or the endpoint could not be reached
    USAGE = 2  # wrong arguments, no key, a file that cannot be read (argparse's own status)
    REJECTED = 3  # 2xx, but the answer lists rejected sessions


@dataclass(frozen=True)
class PushAnswer:
    """The receiver's answer to one push, or why there was none."""

    status: int | None  # None: no HTTP answer at all
    body: str
    error: str | None = None

    @property
    def document(self) -> Any:
        """The answer as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def rejected(self) -> int:
        """How many sessions the answer says were rejected (0 if it does not say)."""
        document = self.document
        if not isinstance(document, dict):
            return 0
        count = document.get("rejected")
        if isinstance(count, int) and not isinstance(count, bool):
            return count
        listed = document.get("rejected_sessions")
        return len(listed) if isinstance(listed, list) else 0

    @property
    def outcome(self) -> PushStatus:
        if self.status is None or not 200 <= self.status < 300:
            return PushStatus.NOT_TAKEN
        return PushStatus.REJECTED if self.rejected else PushStatus.TAKEN


def check_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host, else ValueError (urllib would also open files)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url must be an http:// or https:// URL, not {url!r}")
    return url


def sends_key_in_clear(url: str) -> bool:
    """True for plain http to anything but this machine: the key would cross the network unencrypted."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1")


def send_push(url: str, key: str, body: bytes, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> PushAnswer:
    """POST one push body as ChargePilot does and return the answer (never raises for HTTP errors)."""
    request = urllib.request.Request(  # noqa: S310 - check_url allows http(s) only
        check_url(url), data=body, method="POST", headers={**_HEADERS, KEY_HEADER: key}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return PushAnswer(response.status, _text(response.read()))
    except urllib.error.HTTPError as error:
        with error:
            return PushAnswer(error.code, _text(error.read()))
    except urllib.error.URLError as error:
        return PushAnswer(None, "", f"cannot reach {url}: {error.reason}")
    except TimeoutError:
        return PushAnswer(None, "", f"no answer from {url} within {timeout:g} s")
    except OSError as error:
        return PushAnswer(None, "", f"cannot reach {url}: {error}")


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")
