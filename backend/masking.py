"""Keep passwords out of every line the product prints, logs or stores.

Two layers. `mask_url` parses a database URL and hides what it carries as secrets: the password
of the user info (also one with an unescaped ``@`` or ``/`` in it, which SQLAlchemy's own masking
gets wrong), and ``password=``/``pwd=``-style query values (also inside an ODBC connect string).
`scrub` is the net under it: the secrets this process knows (`remember`: the settings' passwords
and token) and any ``scheme://user:password@`` left in a text are replaced wherever a message can
leave the process: log lines, CLI errors, sidecars, tracking rows.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
#: What may follow the user info: a host (name, IPv4, [IPv6]) and a port, nothing else.
_HOST = re.compile(r"[A-Za-z0-9.\-_%]*(?:\[[0-9A-Fa-f:.%A-Za-z]*\])?(?::[0-9]*)?")
_SECRET_PARAM = re.compile(
    r"(?i)((?:^|[?&;]|%3B|%26)\s*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\s*(?:=|%3D))"
    r"(%7B.*?%7D|\{.*?\}|(?:(?!%3B|%26)[^&;])*)"
)
# A URL inside a longer text: scheme, then everything up to white space or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")

_known: set[str] = set()
_known_lock = threading.Lock()


def mask_url(url: str) -> str:
    """`url` with its password and secret query values replaced by ``***``."""
    match = _SCHEME.match(url)
    if match is None:
        return _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, url)
    head, rest = url[: match.end()], url[match.end() :]
    cut = _userinfo_end(rest)
    if cut is not None:
        userinfo, rest = rest[:cut], rest[cut + 1 :]
        user, colon, _password = userinfo.partition(":")
        rest = f"{user}:{MASK}@{rest}" if colon else f"{user}@{rest}"
    return head + _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, rest)


def _userinfo_end(rest: str) -> int | None:
    """Index of the ``@`` that ends the user info: the last one followed by a plain host."""
    position = len(rest)
    while (position := rest.rfind("@", 0, position)) >= 0:
        after = rest[position + 1 :]
        host = _HOST.match(after)
        end = host.end() if host else 0
        if end == len(after) or after[end] in "/?":
            return position
    return None


def url_secrets(url: str) -> set[str]:
    """The secret parts of `url` (its password, secret query values), as written and decoded."""
    found: set[str] = set()
    match = _SCHEME.match(url)
    rest = url[match.end() :] if match else url
    cut = _userinfo_end(rest) if match else None
    if cut is not None:
        _user, colon, password = rest[:cut].partition(":")
        if colon and password:
            found |= {password, unquote(password)}
    for param in _SECRET_PARAM.finditer(rest):
        if param.group(2):
            found |= {param.group(2), unquote(param.group(2))}
    return found


def remember(secrets: Iterable[str | None]) -> None:
    """Add secrets this process must never print (short ones are skipped: they would mask noise)."""
    with _known_lock:
        _known.update(s for s in secrets if s and len(s) >= 3)


def scrub(text: str) -> str:
    """`text` without any remembered secret and with every URL in it masked."""
    if not text:
        return text
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def sha256_hex(value: str | None) -> str | None:
    """The SHA-256 of the UTF-8 value as 64 lower-case hex digits (empty and NULL stay)."""
    if value is None or value == "":
        return value
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def mask_value(value: str | None) -> str | None:
    """All but the last four characters replaced by ``*`` (values of four or fewer: all)."""
    if value is None or value == "":
        return value
    keep = value[-4:] if len(value) > 4 else ""
    return "*" * (len(value) - len(keep)) + keep
