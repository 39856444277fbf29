"""The outcome of verifying a module signature: a typed verdict with a reason.

Every path through verification ends in exactly one :class:`Verdict`; the
loader's ladder branches on ``kind`` and prints ``message``.  Keeping the
kinds distinct is the point: a tampered module (ALTERED) is refused for
everyone, an unknown signer (UNTRUSTED) only means "no signature-based grant".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pystap.signing.signer_store import SignerScope


class VerdictKind(enum.Enum):
    OK = "ok"
    UNSIGNED = "unsigned"
    UNTRUSTED = "untrusted"
    ALTERED = "altered"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ERROR = "error"


@dataclass(frozen=True)
class Verdict:
    """``statement`` is the verified signed statement (only for OK);
    ``signer`` is the signer key id (hex) when one was identified; ``scope``
    (only for OK) is what the administrator lets that signer certify, which
    the loader's ladder applies."""

    kind: VerdictKind
    message: str
    statement: dict[str, Any] | None = None
    signer: str | None = None
    scope: SignerScope | None = None

    @property
    def ok(self) -> bool:
        return self.kind is VerdictKind.OK
