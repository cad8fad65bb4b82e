"""API keys, one per calling system, stored hashed outside the repository (CREDIT_API_KEYS,
default CREDIT_HOME/api_keys.json). The key itself is shown once, when it is created.

Keys are 256-bit random tokens, so a plain SHA-256 of the key is enough to store (a slow
password hash protects guessable secrets, which these are not). Revoking keeps the entry, so a
revoked key is told apart from an unknown one (403 against 401).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from credit_dagster.core import settings

DEFAULT_RATE = 20.0  # requests per second per key, sustained; bursts of twice that
# what a key may do; a calling system gets the scopes it needs, no more (a key made before scopes
# existed has them all, until it is re-issued)
READ_DECISIONS, READ_LETTERS, CONTEST, SCORE = "decisions:read", "letters:read", "contest", "score"
REPLAY = "decisions:replay"  # a model-risk or audit system re-making past decisions (never a key made before it)
BEFORE_SCOPES = (READ_DECISIONS, READ_LETTERS, CONTEST, SCORE)
SCOPES = (*BEFORE_SCOPES, REPLAY)


def keys_path() -> Path:
    return settings.under_home(settings.current().api_keys, "api_keys.json")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _write(path: Path, entries: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    tmp.chmod(0o600)
    os.replace(tmp, path)


def create(name: str, rate_per_second: float = DEFAULT_RATE, path: Path | None = None, *, scopes: tuple[str, ...],
           channels: tuple[str, ...] = ()) -> str:
    """A new key for `name` (a calling system) that may do `scopes` (and, when given, record contests
    only from `channels`: a branch system's key, say); returns the key, which is not stored."""
    path = path or keys_path()
    entries = _read(path)
    if name in entries and not entries[name].get("revoked_at"):
        raise ValueError(f"{name} already has an active key: revoke it first")
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise ValueError(f"give the key's scopes (--scope), each one of {', '.join(SCOPES)}" + (f"; not {', '.join(unknown)}" if unknown else ""))
    key = f"cd_{secrets.token_urlsafe(32)}"
    entries[name] = {"sha256": _digest(key), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "revoked_at": None, "rate_per_second": rate_per_second, "scopes": sorted(set(scopes)),
                     **({"channels": sorted(set(channels))} if channels else {})}
    _write(path, entries)
    return key


def revoke(name: str, path: Path | None = None) -> None:
    path = path or keys_path()
    entries = _read(path)
    if name not in entries:
        raise ValueError(f"no key named {name} in {path}")
    entries[name]["revoked_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write(path, entries)


def listing(path: Path | None = None) -> dict[str, dict]:
    """Names with creation, revocation and rate; never the hashes."""
    return {name: {k: v for k, v in entry.items() if k != "sha256"} for name, entry in _read(path or keys_path()).items()}


@dataclass(frozen=True)
class Caller:
    name: str
    revoked: bool
    rate_per_second: float
    scopes: frozenset[str] = frozenset(BEFORE_SCOPES)
    channels: frozenset[str] | None = None  # the channels its contests may come from (None: any)


class KeyStore:
    """Looks up presented keys; re-reads the file when it changes, so a revocation takes effect
    on the next request without a restart."""

    def __init__(self, path: Path | None = None):
        self.path = path or keys_path()
        self._stamp: float | None = None
        self._by_digest: dict[str, Caller] = {}
        self._lock = threading.Lock()

    def lookup(self, key: str) -> Caller | None:
        stamp = self.path.stat().st_mtime_ns if self.path.exists() else None
        with self._lock:
            if stamp != self._stamp:
                self._by_digest = {e["sha256"]: Caller(name, bool(e.get("revoked_at")), float(e.get("rate_per_second", DEFAULT_RATE)),
                                                       frozenset(e.get("scopes", BEFORE_SCOPES)),
                                                       frozenset(e["channels"]) if e.get("channels") else None)
                                   for name, e in _read(self.path).items()}
                self._stamp = stamp
            return self._by_digest.get(_digest(key))


class RateLimiter:
    """A token bucket per caller: `rate` requests a second sustained, bursts of twice that."""

    def __init__(self):
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_time(self, caller: Caller) -> float:
        """0 when the request may go ahead (and counts it); else seconds until it may."""
        capacity = 2 * caller.rate_per_second
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller.name, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * caller.rate_per_second)
            if tokens >= 1:
                self._buckets[caller.name] = (tokens - 1, now)
                return 0.0
            self._buckets[caller.name] = (tokens, now)
            return (1 - tokens) / caller.rate_per_second
