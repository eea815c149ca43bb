"""URL helpers: masking credentials for banners, logs, reprs and errors.

Masked: the password of the user-info part (``user:***@``; a lone token before ``@``
becomes ``***@``); the value of every query parameter whose name looks like a secret
(``password``, ``passwd``, ``pwd``, ``pass``, ``secret``, ``token``, ``api_key``, anything
with ``key``, ``auth``, ``credential``, ``sasl`` or ``cookie`` in it, case-insensitive),
except a file or directory name such as ``ssl_keyfile``; and any fragment. A URL whose
user-info holds an unencoded ``/``, ``?`` or ``#`` (so that it no longer parses as
user-info) has everything up to its last ``@`` masked.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["mask_url", "redact", "scheme_of", "secrets_of"]

MASK = "***"

#: Query parameter names whose values are credentials (searched, case-insensitive).
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|auth|credential|sasl|cookie|signature",
                          re.IGNORECASE)


#: ... except a file or directory name (``ssl_keyfile``, ``keyfile``): shown, to debug with.
_PATH_NAME = re.compile(r"(file|path|dir)$", re.IGNORECASE)
_STRICT_SECRET = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a query parameter's value is a credential (see the module docstring)."""
    name = unquote(name)
    if _PATH_NAME.search(name) and not _STRICT_SECRET.search(name):
        return False
    return bool(_SECRET_NAME.search(name))


def mask_url(url: str) -> str:
    """``url`` with every credential-carrying part replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if "@" not in parts.netloc and "@" in url.partition("://")[2]:
        # a reserved character in the password cut the user-info short: mask it all
        scheme, sep, rest = url.partition("://")
        return mask_url(f"{scheme}{sep}{MASK}@{rest.rpartition('@')[2]}")
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostinfo}" if sep else f"{MASK}@{hostinfo}"
    query = "&".join(_mask_param(param) for param in parts.query.split("&"))
    fragment = MASK if parts.fragment else ""
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url  # nothing to hide: as given (urlunsplit would turn unix:/// into unix:/)
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=fragment))


def _mask_param(param: str) -> str:
    name, sep, _value = param.partition("=")
    return f"{name}={MASK}" if sep and is_secret_name(name) else param


def secrets_of(url: str) -> list[str]:
    """The credential values in ``url``, raw and percent-decoded, longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: set[str] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, sep, password = userinfo.partition(":")
        found.add(password if sep else user)
    for param in parts.query.split("&"):
        name, sep, value = param.partition("=")
        if sep and is_secret_name(name):
            found.add(value)
    if parts.fragment:
        found.add(parts.fragment)
    found |= {unquote(value) for value in found}
    return sorted((value for value in found if value), key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """``text`` (an error message, say) with ``url`` masked and its secrets replaced.

    The masked URL itself is kept as is (a user name equal to the password stays shown).
    """
    masked = mask_url(url)
    secrets = secrets_of(url)
    if not secrets:
        return text.replace(url, masked)
    pieces = re.split(f"({re.escape(url)}|{re.escape(masked)})", text)
    out: list[str] = []
    for index, piece in enumerate(pieces):
        if index % 2:  # a separator: the URL, masked or not
            out.append(masked)
            continue
        for secret in secrets:
            piece = piece.replace(secret, MASK)
        out.append(piece)
    return "".join(out)


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased ("" when it does not parse)."""
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""
