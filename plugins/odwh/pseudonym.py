"""Keyed pseudonyms for the rows the board pack and dashboard must tell apart (top exposures, account lists).

A pseudonym is HMAC-SHA256(key, "<kind>:<id>"), shown as ``C-`` (customer) or ``A-`` (account) and 10 base32
characters: stable from month to month under one key, so the board can follow "C-7QF3..." across packs, and
not reversible without the key (IDs are short and guessable, so a plain hash would be). Nothing stores the
mapping; someone holding the key and warehouse access recomputes it (docs/reliability.md, "Pseudonyms").

The key: ``ODWH_PSEUDONYM_KEY`` (the secret itself), else ``ODWH_PSEUDONYM_KEY_FILE`` (a file holding it, e.g. a
Docker secret). With neither, a warehouse named by ``WAREHOUSE_URL`` (a deployment) is refused with
:class:`PseudonymKeyMissing`: a key made up on the spot would change every pseudonym on the next container.
The embedded warehouse (demo, development) gets a random key generated once into
``$ODWH_HOME/secrets/pseudonym.key`` (mode 0600), outside the reports (decision 0026).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from odwh import warehouse

KEY_ENV = "ODWH_PSEUDONYM_KEY"
KEY_FILE_ENV = "ODWH_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16
PREFIXES = {"customer": "C", "account": "A"}


class PseudonymKeyMissing(RuntimeError):
    pass


def generated_key_path() -> Path:
    return warehouse.odwh_home() / "secrets" / "pseudonym.key"


def key() -> bytes:
    """The pseudonym key (see the module docstring for where it comes from)."""
    if value := os.environ.get(KEY_ENV):
        return _checked(value.encode(), KEY_ENV)
    if path := os.environ.get(KEY_FILE_ENV):
        return _checked(Path(path).read_bytes().strip(), path)
    if os.environ.get("WAREHOUSE_URL"):
        raise PseudonymKeyMissing(
            f"no pseudonym key: set {KEY_ENV} (or {KEY_FILE_ENV}) to a secret of at least {MIN_KEY_BYTES}"
            " bytes, e.g. `openssl rand -hex 32`; reports name no client without it (docs/reliability.md)"
        )
    return _generated_key(generated_key_path())


def _checked(value: bytes, source: str) -> bytes:
    if len(value) < MIN_KEY_BYTES:
        raise PseudonymKeyMissing(f"the pseudonym key from {source} is shorter than {MIN_KEY_BYTES} bytes")
    return value


def _generated_key(path: Path) -> bytes:
    """Read the embedded warehouse's key, creating it (0600, exclusively: two processes agree) on first use."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    return path.read_bytes().strip()


def key_id(secret: bytes | None = None) -> str:
    """A fingerprint of the key (not the key): the manifest records it, so a rotation is visible."""
    return hmac.new(secret or key(), b"odwh pseudonym key id", hashlib.sha256).hexdigest()[:12]


def of(kind: str, identifier: str, secret: bytes | None = None) -> str:
    """The pseudonym of a customer or account ID (``kind`` "customer" or "account")."""
    digest = hmac.new(secret or key(), f"{kind}:{identifier}".encode(), hashlib.sha256).digest()
    return f"{PREFIXES[kind]}-{base64.b32encode(digest).decode()[:10]}"
