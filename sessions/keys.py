"""The ChargePilot API key check: constant-time, several keys at once, never open by default.

A push that passes says which configured key it used (its position in CHARGEPILOT_API_KEYS and a
fingerprint), so that an operator can see a rotation through: "pushes arrive with key 2 now".
The fingerprint is a slow, salted hash cut to 8 hex digits: it tells keys apart, and it cannot be
turned back into the key, not even a short one, by trying candidates.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
from dataclasses import dataclass

KEY_HEADER = "Ocp-Apim-Subscription-Key"
_FINGERPRINT_SALT = b"chargepilot-push-receiver/key-fingerprint"
_FINGERPRINT_ROUNDS = 200_000


class KeyCheck(enum.Enum):
    ACCEPTED = "accepted"
    MISSING = "missing"
    WRONG = "wrong"
    NOT_CONFIGURED = "not configured"


@dataclass(frozen=True)
class KeyVerdict:
    """The check's answer, and for an accepted key which one it was (1-based) and its fingerprint."""

    check: KeyCheck
    slot: int | None = None
    fingerprint: str | None = None


@functools.lru_cache(maxsize=16)
def fingerprint(key: str) -> str:
    """A short, non-reversible mark of a key, the same wherever it is computed (slow by design:
    computed once per configured key and process)."""
    derived = hashlib.pbkdf2_hmac(
        "sha256", key.strip().encode("utf-8", "surrogatepass"), _FINGERPRINT_SALT, _FINGERPRINT_ROUNDS
    )
    return derived[:4].hex()


class KeyRing:
    """The keys that may push. Two during a rotation: the old one and the new one."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        # Digests of equal length, so that a comparison takes the same time whatever the key.
        self._digests = tuple(_digest(key) for key in keys)
        self._fingerprints = tuple(fingerprint(key) for key in keys)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._digests)} keys)"

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None) -> KeyVerdict:
        """Judge the key a request presented (the header's value, or None when absent)."""
        if not self._digests:
            return KeyVerdict(KeyCheck.NOT_CONFIGURED)
        if presented is None or not presented.strip():
            return KeyVerdict(KeyCheck.MISSING)
        candidate = _digest(presented.strip())
        # Compare against every key, with no early exit, so the time says nothing about which.
        slot = 0
        for position, digest in enumerate(self._digests, start=1):
            if hmac.compare_digest(candidate, digest) and not slot:
                slot = position
        if not slot:
            return KeyVerdict(KeyCheck.WRONG)
        return KeyVerdict(KeyCheck.ACCEPTED, slot, self._fingerprints[slot - 1])


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
