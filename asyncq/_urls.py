"""URL helpers: masking credentials for banners, logs, reprs and errors."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["mask_url", "scheme_of"]


def mask_url(url: str) -> str:
    """Replace any password (or lone user token) in ``url`` with ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user, sep, _password = userinfo.partition(":")
    masked = f"{user}:***" if sep else "***"
    return urlunsplit(parts._replace(netloc=f"{masked}@{hostinfo}"))


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.lower()
