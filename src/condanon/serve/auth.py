"""API keys: ``Authorization: Bearer <key>``, compared in constant time against every known key."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

Role = Literal["client", "reviewer"]


@dataclass(frozen=True)
class Caller:
    """Who made a request: a role, and an owner tag (a digest of the key, never the key) that jobs are filed under."""

    role: Role
    owner: str

    @property
    def reviewer(self) -> bool:
        return self.role == "reviewer"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class KeyRing:
    """The keys the service accepts; `caller` says whose a presented key is (or None)."""

    def __init__(self, clients: tuple[str, ...], reviewers: tuple[str, ...], open_access: bool = False) -> None:
        self._keys: list[tuple[bytes, Role]] = [(_digest(k), "client") for k in clients]
        self._keys += [(_digest(k), "reviewer") for k in reviewers]
        self.open_access = open_access

    def caller(self, authorization: str | None) -> Caller | None:
        """Return the caller of an ``Authorization`` header, or None when it holds no known key.

        Every key is compared, each with `hmac.compare_digest` on equal-length digests, so the time taken says
        nothing about how close a guess came or which key matched.
        """
        if self.open_access:
            return Caller("reviewer", "open")
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        digest = _digest(presented.strip())
        found: Role | None = None
        for known, role in self._keys:
            if hmac.compare_digest(known, digest) and found is None:
                found = role
        if found is None:
            return None
        return Caller(found, digest.hex()[:16])
