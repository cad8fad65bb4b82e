"""The number an erased applicant's retained decisions are kept under (subject/erase.py).

Negative (never a real SK_ID_CURR), keyed (HMAC-SHA256 with the home's key, `keys/pseudonyms.key`,
made at the first erasure and backed up with the home): the lender finds a retained decision again
when the person comes back with their number; nobody without the key can compute it from the number.
48 bits: exact in any column, float ones included.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from credit_dagster.core import settings


def key_path() -> Path:
    return settings.credit_home() / "keys" / "pseudonyms.key"


def pseudonym(sk_id_curr: int) -> int:
    """The applicant's pseudonym, the key made if this home has none yet."""
    path = key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:  # created once, 0600 from the start; a process that lost the race reads the winner's
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                handle.write(secrets.token_bytes(32))
                handle.flush()
                os.fsync(handle.fileno())
        except FileExistsError:
            pass
    return of(path.read_bytes(), sk_id_curr)


def known(sk_id_curr: int) -> int | None:
    """The applicant's pseudonym if this home ever erased anyone (no key is made to look)."""
    path = key_path()
    return of(path.read_bytes(), sk_id_curr) if path.exists() else None


def of(key: bytes, sk_id_curr: int) -> int:
    """The pseudonym `key` gives the applicant (many numbers keyed with a key read once)."""
    digest = hmac.new(key, str(int(sk_id_curr)).encode(), hashlib.sha256).digest()
    return -(int.from_bytes(digest[:6], "big") + 1)
