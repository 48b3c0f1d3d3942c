"""Redaction of secret values from text: the one filter every log passes through.

Standard library only, so the instance can run it as a plain script before (or
without) the project being installed::

    python3 reference/cloud/redact.py KAGGLE_KEY WANDB_API_KEY < raw.log > published.log

reads the values of the named environment variables and replaces each of them,
and the forms a tool may print instead of the raw value (HTTP Basic credentials
``base64(user:key)``, URL-quoted), with ``[redacted NAME]``. Values shorter than
8 characters are not secrets we issue and are left alone (they would match
ordinary words).
"""

from __future__ import annotations

import base64
import os
import sys
import urllib.parse
from collections.abc import Iterable, Mapping

__all__ = ["MIN_SECRET_LEN", "secret_forms", "redact", "redact_bytes", "main"]

MIN_SECRET_LEN = 8


def secret_forms(name: str, value: str, username: str | None = None) -> dict[str, str]:
    """{text a tool could print: its replacement} for one secret value.

    username: when given, the HTTP Basic form base64("username:value") is included
    (the Kaggle CLI authenticates that way).
    """
    if len(value) < MIN_SECRET_LEN:
        return {}
    tag = f"[redacted {name}]"
    forms = {value: tag, urllib.parse.quote(value, safe=""): tag}
    if username:
        basic = base64.b64encode(f"{username}:{value}".encode()).decode()
        forms[basic] = tag
    return forms


def _forms_of(secrets: Mapping[str, str] | Iterable[tuple[str, str]], username: str | None):
    items = secrets.items() if isinstance(secrets, Mapping) else secrets
    forms: dict[str, str] = {}
    for name, value in items:
        if value:
            forms.update(secret_forms(name, value, username))
    # Longest first: a value that contains another is replaced whole.
    return sorted(forms.items(), key=lambda kv: -len(kv[0]))


def redact(
    text: str, secrets: Mapping[str, str] | Iterable[tuple[str, str]], username: str | None = None
) -> str:
    """`text` with every form of every secret value replaced by ``[redacted NAME]``."""
    for needle, tag in _forms_of(secrets, username):
        text = text.replace(needle, tag)
    return text


def redact_bytes(
    data: bytes, secrets: Mapping[str, str] | Iterable[tuple[str, str]], username: str | None = None
) -> bytes:
    """Same as :func:`redact` on raw bytes (a log need not be valid UTF-8)."""
    for needle, tag in _forms_of(secrets, username):
        data = data.replace(needle.encode(), tag.encode())
    return data


def main(argv: list[str] | None = None) -> int:
    """Script entry: redact stdin to stdout with the values of the named environment variables."""
    names = list(sys.argv[1:] if argv is None else argv)
    secrets = {n: os.environ.get(n, "") for n in names}
    data = sys.stdin.buffer.read()
    sys.stdout.buffer.write(redact_bytes(data, secrets, os.environ.get("KAGGLE_USERNAME")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
