"""Store errors and password masking.

Every failure a ``Store`` call can have reaches the caller as a ``StoreError``
whose message is one line, names what was attempted and never contains a
password: URLs are shown through ``mask_url`` and driver messages are scrubbed
of the password before they are quoted.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s]*)@")


class StoreError(RuntimeError):
    """A store operation failed. The message is one line and holds no password."""


class AttemptLost(StoreError):
    """The attempt is no longer its trial's running attempt (interrupted, found stale, or superseded).

    The worker that gets this must stop training the trial: someone else owns it now.
    """


def mask_url(url: object) -> str:
    """The URL with its password replaced by ``***``: ``postgresql+psycopg://user:***@host/db``.

    Works on anything, also strings that are not valid URLs (the userinfo part is
    masked by pattern), so it is safe to use in every message.
    """
    text = str(url)
    try:
        from sqlalchemy.engine import URL, make_url

        parsed = url if isinstance(url, URL) else make_url(text)
        if parsed.password is not None:
            return parsed.render_as_string(hide_password=True)
        return parsed.render_as_string(hide_password=False)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy understands: mask by pattern
        return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` on one line, with every URL's password and every string in ``secrets`` replaced by ``***``."""
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe=""), unquote(secret)}:
            if form:
                out = out.replace(form, "***")
    return " ".join(out.split())


def first_line(text: object) -> str:
    """The first non-empty line of ``text`` (stripped), or '' when there is none."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""
