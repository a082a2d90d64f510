"""The ChargePilot API key check: constant-time, several keys at once, never open by default."""

from __future__ import annotations

import enum
import hashlib
import hmac

KEY_HEADER = "Ocp-Apim-Subscription-Key"


class KeyCheck(enum.Enum):
    ACCEPTED = "accepted"
    MISSING = "missing"
    WRONG = "wrong"
    NOT_CONFIGURED = "not configured"


class KeyRing:
    """The keys that may push. Two during a rotation: the old one and the new one."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        # Digests of equal length, so that a comparison takes the same time whatever the key.
        self._digests = tuple(_digest(key) for key in keys)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._digests)} keys)"

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None) -> KeyCheck:
        """Judge the key a request presented (the header's value, or None when absent)."""
        if not self._digests:
            return KeyCheck.NOT_CONFIGURED
        if presented is None or not presented.strip():
            return KeyCheck.MISSING
        candidate = _digest(presented.strip())
        # Compare against every key, with no early exit, so the time says nothing about which.
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return KeyCheck.ACCEPTED if matched else KeyCheck.WRONG


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
