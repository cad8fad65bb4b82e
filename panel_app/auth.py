"""Who may open the dashboard, and the record of what they looked at.

Sign-in is Panel's own: its basic-auth login page and secure cookie, with passwords checked
against scrypt hashes in a users file kept outside the repository (CREDIT_DASHBOARD_USERS,
default CREDIT_HOME/dashboard/users.json, mode 600), or any OAuth/OIDC provider Panel
supports, configured by environment (CREDIT_DASHBOARD_OAUTH_PROVIDER plus Panel's own
PANEL_OAUTH_KEY, PANEL_OAUTH_SECRET, PANEL_OAUTH_EXTRA_PARAMS...). The access log is an
append-only JSON-lines file per day under CREDIT_HOME/dashboard/access: the dashboard never
writes to the warehouse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from panel.auth import BasicAuthProvider, BasicLoginHandler
from tornado.escape import url_escape
from tornado.ioloop import IOLoop

from credit_dagster.core import settings
from credit_dagster.core.audit import AuditLog

NO_LOGIN = "(no sign-in)"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
TEMPLATES = Path(__file__).parent / "templates"
SIGN_IN_PAGE = TEMPLATES / "signin.html"  # the sign-in page and the signed-out page


def dashboard_home() -> Path:
    return settings.credit_home() / "dashboard"


def users_path() -> Path:
    return settings.current().dashboard_users or dashboard_home() / "users.json"


def access_dir() -> Path:
    return settings.current().dashboard_access_dir or dashboard_home() / "access"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), **SCRYPT)
    return hmac.compare_digest(candidate, base64.b64decode(digest))


ADVISOR, SUPERVISOR = "advisor", "supervisor"
ROLES = (ADVISOR, SUPERVISOR)


def _entries(path: Path | None = None) -> dict[str, dict]:
    """name -> {"hash", "role"}; a file written before roles existed holds hashes alone: advisors."""
    path = path or users_path()
    raw = json.loads(path.read_text()) if path.exists() else {}
    return {name: entry if isinstance(entry, dict) else {"hash": entry, "role": ADVISOR} for name, entry in raw.items()}


def read_users(path: Path | None = None) -> dict[str, str]:
    """name -> password hash, for signing in."""
    return {name: entry["hash"] for name, entry in _entries(path).items()}


def roles(path: Path | None = None) -> dict[str, str]:
    return {name: entry["role"] for name, entry in _entries(path).items()}


def role_of(user: str, user_info: dict | None = None) -> str:
    """The signed-in user's role: from the users file, or from the identity provider's claim
    CREDIT_DASHBOARD_ROLE_CLAIM; anyone else is an advisor (the least a reviewer may do). The
    local look without sign-in (`--no-login`) sees everything."""
    if user == NO_LOGIN:
        return SUPERVISOR
    claimed = (user_info or {}).get(settings.current().dashboard_role_claim)
    if claimed in ROLES:
        return claimed
    return roles().get(user, ADVISOR)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def set_user(name: str, password: str, path: Path | None = None, role: str = ADVISOR) -> None:
    if not name or ":" in name or len(password) < 12:
        raise ValueError("a user name without ':' and a password of at least 12 characters are needed")
    if role not in ROLES:
        raise ValueError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    users = _entries(path)
    users[name] = {"hash": hash_password(password), "role": role}
    _write_private(path or users_path(), json.dumps(users, indent=2))


def remove_user(name: str, path: Path | None = None) -> bool:
    users = _entries(path)
    found = users.pop(name, None) is not None
    _write_private(path or users_path(), json.dumps(users, indent=2))
    return found


def cookie_secret() -> str:
    """CREDIT_DASHBOARD_COOKIE_SECRET, else one generated once and kept (mode 600), so a
    restart does not sign everybody out."""
    configured = settings.current().dashboard_cookie_secret
    if configured:
        return configured
    path = dashboard_home() / "cookie_secret"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(48))
    return path.read_text().strip()


# a password is checked at the same cost whether or not its user exists (no timing tells who has an account)
_UNKNOWN_USER = hash_password(secrets.token_urlsafe(16))
FREE_TRIES = 5  # failed sign-ins of one account, or from one address, before each next try waits
MAX_WAIT = 15 * 60  # seconds: the longest a back-off lasts


class Throttle:
    """Failed sign-ins per account and per address: after FREE_TRIES, each next try waits twice as
    long as the last (2 s, 4 s, … up to MAX_WAIT), the right password included; a success clears
    its account and address. Kept by the server process: a restart lifts every wait."""

    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def wait(self, *keys: tuple[str, str]) -> float:
        now = time.monotonic()
        with self._lock:
            return max([until - now for _, until in (self._failures.get(k, (0, 0.0)) for k in keys)] + [0.0])

    def failed(self, *keys: tuple[str, str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                count = self._failures.get(key, (0, 0.0))[0] + 1
                until = now + min(2.0 ** (count - FREE_TRIES), MAX_WAIT) if count >= FREE_TRIES else 0.0
                self._failures[key] = (count, until)

    def succeeded(self, *keys: tuple[str, str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


THROTTLE = Throttle()


def same_site(url: str | None) -> str:
    """A redirect target that stays on this server: a path of its own ("/app"), never "//host",
    "///host" or "/\\host", which browsers read as another site (Panel's own check misses "///")."""
    if not url or not url.startswith("/") or url[1:2] in ("/", "\\") or "\\" in url or urlparse(url).netloc:
        return "/"
    return url


class HashedLoginHandler(BasicLoginHandler):
    """Panel's login page and cookie; the password checked against the stored hash, off the
    server's event loop (a guessing loop cannot slow everyone's pages), at one cost for known and
    unknown users, with a back-off per account and per address, and a redirect only within this site."""

    def _validate(self, username: str, password: str) -> bool:
        stored = read_users().get(username)
        ok = verify_password(password, stored or _UNKNOWN_USER) and stored is not None
        access_log().append([{"at": _now(), "user": username[:100], "event": "sign-in" if ok else "sign-in refused",
                              "address": self.request.remote_ip}])
        return ok

    def _again(self, error: str) -> None:
        self.redirect(f"{self.request.path}?error={url_escape(error)}")

    async def post(self):
        username, password = self.get_argument("username", "")[:200], self.get_argument("password", "")
        keys = (("user", username), ("address", str(self.request.remote_ip)))
        if THROTTLE.wait(*keys) > 0:
            access_log().append([{"at": _now(), "user": username[:100], "event": "sign-in refused: too many attempts",
                                  "address": self.request.remote_ip}])
            return self._again("Too many failed attempts")
        if not await IOLoop.current().run_in_executor(None, self._validate, username, password):
            THROTTLE.failed(*keys)
            return self._again("Invalid username or password")
        THROTTLE.succeeded(*keys)
        self.set_current_user(username)
        self.redirect(same_site(self.get_cookie("next_url", "/")))


class HashedAuthProvider(BasicAuthProvider):
    def __init__(self) -> None:
        super().__init__(login_template=str(SIGN_IN_PAGE), logout_template=str(SIGN_IN_PAGE))

    @property
    def login_handler(self):
        HashedLoginHandler._login_endpoint = self._login_endpoint
        HashedLoginHandler._login_template = self._login_template
        return HashedLoginHandler


def access_log() -> AuditLog:
    return AuditLog(access_dir(), prefix="access_")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(user: str, event: str, sk_id: int | None = None, **details) -> None:
    """One line of the access log: who did what with which application, when."""
    access_log().append([{"at": _now(), "user": user, "event": event, "SK_ID_CURR": sk_id, **details}])
