"""``Secret``: the shared secret, held so that nothing prints it.

Tracebacks that capture locals (pytest ``-l``, Sentry, rich) print ``repr`` of every local of
every frame. So the secret lives in this type from the moment reconkit receives it: its
``repr``/``str`` are masked, and the key is decoded only inside :meth:`Secret.hmac_sha256`,
never into a local variable of a frame that can raise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Secret"]


class Secret:
    """A base64 shared secret whose ``repr`` and ``str`` are ``'***'``.

    Parameters
    ----------
    value : str or Secret
        The secret as CyberSource shows it (base64). Never validated here: building one never
        raises, so no frame holding the plain text can appear in a traceback.
    """

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value._value if isinstance(value, Secret) else value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # Pickling a config (multiprocessing, caching) must work; the masked text would be useless.
        return (Secret, (self._value,))  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        mine = self._value
        theirs = other._value if isinstance(other, Secret) else other
        if not isinstance(mine, str) or not isinstance(theirs, str):
            return False
        return hmac.compare_digest(mine.encode(), theirs.encode())

    def __hash__(self) -> int:
        return hash(("reconkit.Secret", self._value))

    def is_blank(self) -> bool:
        """True when there is no secret (None, not text, or only whitespace)."""
        return not isinstance(self._value, str) or not self._value.strip()

    def is_base64(self) -> bool:
        """True when the secret decodes as (non-empty) strict base64."""
        if self.is_blank():
            return False
        try:
            return bool(base64.b64decode(self._value.strip(), validate=True))  # type: ignore[union-attr]
        except (binascii.Error, ValueError):
            return False

    def unlock(self, loader: Callable[[bytes], T]) -> T | None:
        """``loader(password_bytes)``, or None when it raises (a wrong password, a bad file).

        For key files (a P12's ``key_password``): the plain text goes straight into ``loader``
        and no exception it raises leaves this frame, so no traceback shows it. The caller
        raises its own error, naming the setting and never the value.
        """
        if self.is_blank():
            return None
        try:
            return loader(self._value.encode("utf-8"))  # type: ignore[union-attr]
        except Exception:
            return None

    def hmac_sha256(self, message: bytes) -> bytes:
        """The HMAC-SHA256 of ``message`` keyed with the decoded secret (the signing step)."""
        return hmac.new(base64.b64decode(self._value.strip()), message, hashlib.sha256).digest()  # type: ignore[union-attr]
