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
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import panel as pn
from panel.auth import BasicAuthProvider, BasicLoginHandler, LogoutHandler
from tornado.escape import url_escape
from tornado.ioloop import IOLoop
from tornado.web import decode_signed_value

from credit_dagster.core import audit, settings
from panel_app import metrics

NO_LOGIN = "(no sign-in)"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
TEMPLATES = Path(__file__).parent / "templates"
SIGN_IN_PAGE = TEMPLATES / "signin.html"  # the sign-in page and the signed-out page


def dashboard_home() -> Path:
    return settings.credit_home() / "dashboard"


def users_path() -> Path:
    return settings.current().dashboard_users or dashboard_home() / "users.json"


def access_dir() -> Path:
    return audit.access_dir()


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
    """name -> {"hash", "role"[, "locked"]}; a file written before roles existed holds hashes alone: advisors."""
    path = path or users_path()
    raw = json.loads(path.read_text()) if path.exists() else {}
    return {name: entry if isinstance(entry, dict) else {"hash": entry, "role": ADVISOR} for name, entry in raw.items()}


@contextmanager
def _edit_users(path: Path | None = None):
    """The users file, changed under a lock: the CLI and the server (which locks and unlocks
    accounts) never lose each other's writes."""
    path = path or users_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(".users.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        users = _entries(path)
        yield users
        _write_private(path, json.dumps(users, indent=2))


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
    """Add a user, or change one's password or role: their open sessions end at once."""
    if not name or ":" in name or len(password) < 12:
        raise ValueError("a user name without ':' and a password of at least 12 characters are needed")
    if role not in ROLES:
        raise ValueError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    with _edit_users(path) as users:  # a new password lifts a lock
        users[name] = {"hash": hash_password(password), "role": role}
    Sessions(beside=path).end_all(name)


def remove_user(name: str, path: Path | None = None) -> bool:
    """Remove a user: their open sessions end at once."""
    with _edit_users(path) as users:
        found = users.pop(name, None) is not None
    Sessions(beside=path).end_all(name)
    return found


def lock(name: str, path: Path | None = None) -> None:
    """Lock an account after too many failed sign-ins in a row: its right password opens nothing
    until a supervisor or the CLI unlocks it (a restart does not)."""
    with _edit_users(path) as users:
        if name in users:
            users[name]["locked"] = datetime.now(UTC).isoformat(timespec="seconds")


def unlock(name: str, path: Path | None = None) -> bool:
    """Lift an account's lock; False if it was not locked."""
    with _edit_users(path) as users:
        return users.get(name, {}).pop("locked", None) is not None


def locked(path: Path | None = None) -> dict[str, str]:
    """name -> when it was locked, for the accounts locked now."""
    return {name: entry["locked"] for name, entry in _entries(path).items() if entry.get("locked")}


SESSION_COOKIE = "credit_session"
CSRF_COOKIE = "credit_sign_in"  # the sign-in form's token, which only this site's page can send back
SEEN_EVERY = 30  # seconds: how often a session's last use is written (not at every request)


class Sessions:
    """Signed-in sessions kept on the server (`sessions.json` beside the users file, mode 600), so
    that signing out, removing a user or changing their password ends them at once, and a session
    ends after CREDIT_DASHBOARD_IDLE_MINUTES without use or CREDIT_DASHBOARD_SESSION_HOURS after
    sign-in. The file holds digests of the session ids, never the ids the cookies carry; it is
    read under a lock, so the CLI (user removal) and the server never lose each other's writes."""

    def __init__(self, beside: Path | None = None):
        self.path = (beside or users_path()).with_name("sessions.json")

    @contextmanager
    def _edit(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(".sessions.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            sessions = json.loads(self.path.read_text()) if self.path.exists() else {}
            before = json.dumps(sessions, sort_keys=True)
            yield sessions
            if json.dumps(sessions, sort_keys=True) != before:
                _write_private(self.path, json.dumps(sessions))

    @staticmethod
    def _digest(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    @staticmethod
    def _ended(session: dict, now: float) -> bool:
        limits = settings.current()
        return now - session["seen"] > 60 * limits.dashboard_idle_minutes or now - session["opened"] > 3600 * limits.dashboard_session_hours

    def open(self, user: str) -> str:
        sid, now = secrets.token_urlsafe(32), time.time()
        with self._edit() as sessions:
            for key in [k for k, s in sessions.items() if self._ended(s, now)]:
                del sessions[key]  # the ended ones go as others open
            sessions[self._digest(sid)] = {"user": user, "opened": now, "seen": now}
        return sid

    def valid(self, sid: str | None, user: str, used: bool = True) -> bool:
        """Whether `sid` is an open session of `user` (and `used`: it was used now, for the idle time)."""
        if not sid:
            return False
        now = time.time()
        with self._edit() as sessions:
            found = sessions.get(self._digest(sid))
            if found is None or found["user"] != user:
                return False
            if self._ended(found, now):
                del sessions[self._digest(sid)]
                return False
            if used and now - found["seen"] > SEEN_EVERY:
                found["seen"] = now
        return True

    def open_count(self, now: float) -> int:
        """Sessions open now (read only: the ended ones go as others open)."""
        sessions = json.loads(self.path.read_text()) if self.path.exists() else {}
        return sum(not self._ended(s, now) for s in sessions.values())

    def end(self, sid: str | None) -> None:
        if sid:
            with self._edit() as sessions:
                sessions.pop(self._digest(sid), None)

    def end_all(self, user: str) -> None:
        with self._edit() as sessions:
            for key in [k for k, s in sessions.items() if s["user"] == user]:
                del sessions[key]


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

    def failed(self, *keys: tuple[str, str]) -> int:
        """Count a failure of each key; the first key's failures in a row."""
        now = time.monotonic()
        counts = []
        with self._lock:
            for key in keys:
                count = self._failures.get(key, (0, 0.0))[0] + 1
                until = now + min(2.0 ** (count - FREE_TRIES), MAX_WAIT) if count >= FREE_TRIES else 0.0
                self._failures[key] = (count, until)
                counts.append(count)
        return counts[0]

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
        entry = _entries().get(username, {})
        stored = None if entry.get("locked") else entry.get("hash")  # a locked account costs and answers as an unknown one
        ok = verify_password(password, stored or _UNKNOWN_USER) and stored is not None
        access_log().append([{"at": _now(), "user": username[:100], "event": "sign-in" if ok else "sign-in refused",
                              "address": self.request.remote_ip}])
        return ok

    def _again(self, error: str) -> None:
        self.redirect(f"{self.request.path}?error={url_escape(error)}")

    def set_secure_cookie(self, name, value, expires_days=None, version=None, **kwargs):
        """Every signed cookie of a sign-in (Panel's `user` and `id_token`, and the session's): HttpOnly,
        SameSite=Strict, Secure over HTTPS, and gone when the browser closes (the session on the server
        decides how long it lasts)."""
        kwargs.update(httponly=True, samesite="Strict", secure=self.request.protocol == "https")
        return super().set_secure_cookie(name, value, expires_days=None, version=version, **kwargs)

    def get(self):
        """The form, with a token only this browser holds (in a SameSite=Strict cookie): another site
        cannot post a sign-in of its own choosing. Where to go after it is kept to this site."""
        https = self.request.protocol == "https"
        self.set_cookie("next_url", same_site(self.get_argument("next", "/")), httponly=True, samesite="Strict", secure=https)
        token = secrets.token_urlsafe(24)
        self.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=https)
        self.write(self._login_template.render(login_endpoint=self._login_endpoint, errormessage=self.get_argument("error", ""),
                                               csrf=token))

    async def post(self):
        username, password = self.get_argument("username", "")[:200], self.get_argument("password", "")
        if not hmac.compare_digest(self.get_argument("csrf", ""), self.get_cookie(CSRF_COOKIE, "") or "-"):
            access_log().append([{"at": _now(), "user": username[:100], "event": "sign-in refused: not this site's form",
                                  "address": self.request.remote_ip}])
            metrics.SIGN_INS.labels("not this site's form").inc()
            return self._again("Invalid username or password")  # refused like a wrong password
        keys = (("user", username), ("address", str(self.request.remote_ip)))
        if THROTTLE.wait(*keys) > 0:
            access_log().append([{"at": _now(), "user": username[:100], "event": "sign-in refused: too many attempts",
                                  "address": self.request.remote_ip}])
            metrics.SIGN_INS.labels("backed off").inc()
            return self._again("Too many failed attempts")
        if not await IOLoop.current().run_in_executor(None, self._validate, username, password):
            metrics.SIGN_INS.labels("refused").inc()
            if THROTTLE.failed(*keys) == settings.current().dashboard_lock_after and username in read_users():
                lock(username)
                access_log().append([{"at": _now(), "user": username[:100], "event": "account locked", "address": self.request.remote_ip}])
            return self._again("Invalid username or password")
        metrics.SIGN_INS.labels("signed in").inc()
        THROTTLE.succeeded(*keys)
        self.set_current_user(username)
        self.set_secure_cookie(SESSION_COOKIE, Sessions().open(username))
        self.redirect(same_site(self.get_cookie("next_url", "/")))


def session_of(handler) -> str | None:
    """The session id the request's signed cookie carries, if any."""
    sid = handler.get_secure_cookie(SESSION_COOKIE)
    return sid.decode() if sid else None


def page_session(user: str):
    """For a page signed in with the users file: whether its session is still open (`used`: count this
    as a use). None without such a sign-in (an identity provider's, or none)."""
    raw = (pn.state.cookies or {}).get(SESSION_COOKIE)
    if user == NO_LOGIN or not raw or not read_users():
        return None
    sid = decode_signed_value(cookie_secret(), SESSION_COOKIE, raw)
    sessions, sid = Sessions(), sid.decode() if sid else None
    return lambda used: sessions.valid(sid, user, used)


class SignOutHandler(LogoutHandler):
    """Signing out ends the session on the server (the old cookie opens nothing any more), by GET
    (the page's link) or by POST."""

    def get(self):
        Sessions().end(session_of(self))
        self.clear_cookie(SESSION_COOKIE)
        super().get()

    def post(self):
        self.get()


class HashedAuthProvider(BasicAuthProvider):
    def __init__(self) -> None:
        super().__init__(login_template=str(SIGN_IN_PAGE), logout_template=str(SIGN_IN_PAGE))

    @property
    def login_handler(self):
        HashedLoginHandler._login_endpoint = self._login_endpoint
        HashedLoginHandler._login_template = self._login_template
        return HashedLoginHandler

    @property
    def logout_handler(self):
        SignOutHandler._logout_template = self._logout_template
        SignOutHandler._login_endpoint = self._login_endpoint
        return SignOutHandler

    @property
    def get_user(self):
        """Panel's signed user cookie, and an open session of that user kept on the server: a cookie
        alone (after sign-out, removal or a password change, or past the idle or absolute time) is
        no sign-in."""
        cookie_user = super().get_user

        def get_user(handler):
            user = cookie_user(handler)
            if user and user != "guest" and Sessions().valid(session_of(handler), user):
                return user
            if user:
                handler.clear_cookie("user")
            return None

        return get_user


def access_log() -> audit.AuditLog:
    return audit.AuditLog(access_dir(), prefix=audit.ACCESS_PREFIX)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(user: str, event: str, sk_id: int | None = None, **details) -> None:
    """One line of the access log: who did what with which application, when."""
    access_log().append([{"at": _now(), "user": user, "event": event, "SK_ID_CURR": sk_id, **details}])
