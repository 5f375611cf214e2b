"""Keys, pseudonyms and the encrypted per-subject vault.

- The **master key** (32 bytes, ``MLLEDGER_MASTER_KEY`` in base64, or a key file
  created with mode 0600 in the ledger's key directory, ``registry.settings``)
  wraps every other key with AES-256-GCM. It is never stored in the database.
- Each project has a random **pseudonym secret**; record keys and subject ids
  become ``HMAC-SHA256(secret, domain || key)`` truncated to 128 bits, in hex.
  Without the secret a pseudonym cannot be linked back, even for guessable keys.
- Each subject has a random **data key**; their personal attributes are stored
  encrypted under it (AES-256-GCM). Deleting the key and the rows erases them.
- An erasure names the subject and their records by **erasure references**:
  HMAC-SHA256 of the pseudonym under the same secret, in another domain. The
  erased pseudonyms are removed everywhere; the references that remain let a
  question about the subject (asked with their id) answer "erased", and match
  no pseudonym anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, func, insert, select

from registry.errors import ConfigError, InvalidInput
from registry.ids import new_id
from registry.settings import Settings, default_key_file, given, write_private_file
from registry.store.schema import T
from registry.timeutil import now

_RECORD = b"record\x00"
_SUBJECT = b"subject\x00"
_ERASED_SUBJECT = b"erased-subject\x00"
_ERASED_RECORD = b"erased-record\x00"


class KeyRing:
    """Wraps and unwraps keys under the master key."""

    def __init__(self, master: bytes):
        if len(master) != 32:
            raise ConfigError(
                f"master key is {len(master)} bytes, expected 32 (base64 of 32 bytes)"
            )
        self._aead: AESGCM | None = AESGCM(master)
        self._missing = ""

    @classmethod
    def missing(cls, reason: str) -> KeyRing:
        """A key ring without its key: every wrap or unwrap raises ``ConfigError(reason)``.
        A ledger opened with it still reads the log, which needs no key."""
        ring = cls.__new__(cls)
        ring._aead = None
        ring._missing = reason
        return ring

    @classmethod
    def load(cls, url: str, settings: Settings | None = None) -> KeyRing:
        """From ``MLLEDGER_MASTER_KEY``, else the key file (``MLLEDGER_KEY_FILE`` or
        ``master.key`` in the ledger's key directory), created on first use.

        A key file that group or others may read is refused. No key is created for
        a database that already holds keys wrapped by one: the key ring returned
        then refuses every use, saying where the key was looked for. ``settings`` stand
        in for the ``MLLEDGER_*`` environment, read when not given.
        """
        settings = given(settings)
        if settings.master_key:
            return cls(_decode_key(settings.master_key, "MLLEDGER_MASTER_KEY"))
        path = default_key_file(url, settings)
        if not os.path.lexists(path):
            refusal = _new_master_key_refusal(url, path)
            if refusal is not None:
                return cls.missing(refusal)
            write_private_file(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
        return cls(_decode_key(read_key_file(path, "master key"), str(path)))

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            raise ConfigError(self._missing)
        return self._aead

    def wrap(self, key: bytes, context: bytes) -> bytes:
        """Encrypt ``key``, bound to ``context`` (authenticated, not secret)."""
        nonce = secrets.token_bytes(12)
        return nonce + self._cipher().encrypt(nonce, key, context)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        """Decrypt a wrapped key; a wrong master key is a clear error."""
        try:
            return self._cipher().decrypt(blob[:12], blob[12:], context)
        except InvalidTag:
            raise ConfigError(
                "cannot unwrap a stored key: the master key is not the one this database was "
                "created with (check MLLEDGER_MASTER_KEY / MLLEDGER_KEY_FILE)"
            ) from None


def _decode_key(text: str, source: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ConfigError(f"master key from {source} is not base64 of 32 bytes") from None


def _new_master_key_refusal(url: str, path: Path) -> str | None:
    """Why no new master key may be made at ``path`` for the database at ``url`` (it
    holds keys wrapped by another one, which a new key could not unwrap), or None."""
    from registry.store import peek

    wrapped = 0
    with peek(url, "project_secrets") as conn:
        if conn is not None:
            count = select(func.count()).select_from(T["project_secrets"])
            wrapped = conn.execute(count).scalar_one()
    if not wrapped:
        return None
    return (
        f"no master key at {path}, but the database already holds {wrapped} project "
        "secret(s) wrapped by one: refusing to create a new master key, which could "
        f"unwrap none of them. Restore the master key's file to {path}, or point "
        "MLLEDGER_KEY_FILE (or MLLEDGER_MASTER_KEY) at it"
    )


#: A key file is one line of text; anything longer is not one.
MAX_KEY_FILE = 4096


def read_key_bytes(path: Path, exposed: Callable[[int], Exception] | None) -> bytes:
    """Up to ``MAX_KEY_FILE + 1`` bytes of the key file ``path``. With ``exposed``, a file
    that group or others may access (on POSIX) is refused before it is read: the error
    ``exposed(its permission bits)`` is raised. OSError as opening or reading raises it."""
    with open(path, "rb") as fh:
        if exposed is not None and os.name == "posix":
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            if mode & 0o077:
                raise exposed(mode)
        return fh.read(MAX_KEY_FILE + 1)


def read_key_file(path: Path, what: str) -> str:
    """The one line of the key file ``path``; refuses a file that group or others
    may access (a key is a secret) and an empty one."""

    def exposed(mode: int) -> ConfigError:
        return ConfigError(
            f"{what} file {path} is accessible by group or others (mode "
            f"{mode:04o}); it must be private to its owner: run `chmod 600 {path}`"
        )

    try:
        data = read_key_bytes(path, exposed)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise ConfigError(f"{what} file {path} is over {MAX_KEY_FILE} bytes: not a key file")
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        raise ConfigError(
            f"{what} file {path} is empty: expected the key it was created with "
            "(restore the file from your copy of the key)"
        )
    return text


class Pseudonymizer:
    """Keyed pseudonyms of one project's record keys and subject ids."""

    def __init__(self, secret: bytes):
        self._secret = secret
        # HMAC (RFC 2104) with its inner and outer SHA-256 states keyed once and the
        # domain prefix absorbed: each key then costs two hash copies, no key setup.
        key = secret if len(secret) <= 64 else hashlib.sha256(secret).digest()
        block = key.ljust(64, b"\x00")
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._record_inner = inner.copy()
        self._record_inner.update(_RECORD)
        self._subject_inner = inner.copy()
        self._subject_inner.update(_SUBJECT)
        self._erased_subject_inner = inner.copy()
        self._erased_subject_inner.update(_ERASED_SUBJECT)
        self._erased_record_inner = inner.copy()
        self._erased_record_inner.update(_ERASED_RECORD)

    def _pseudonym(self, inner: Any, raw: bytes) -> str:
        h = inner.copy()
        h.update(raw)
        o = self._outer.copy()
        o.update(h.digest())
        return o.digest()[:16].hex()

    def record(self, key: object) -> str:
        """Pseudonym of a record key (str or int)."""
        return self._pseudonym(self._record_inner, _key_bytes(key, "record key"))

    def subject(self, subject: object) -> str:
        """Pseudonym of a data-subject id (str or int)."""
        return self._pseudonym(self._subject_inner, _key_bytes(subject, "subject id"))

    def records(self, keys: Iterable[object]) -> list[str]:
        """Pseudonyms of many record keys (the hot path of prediction logging)."""
        inner_copy, outer_copy = self._record_inner.copy, self._outer.copy
        out = []
        for key in keys:
            h = inner_copy()
            h.update(
                key.encode("utf-8") if type(key) is str and key else _key_bytes(key, "record key")
            )
            o = outer_copy()
            o.update(h.digest())
            out.append(o.digest()[:16].hex())
        return out

    def erasure_reference(self, subject_pseudonym: str) -> str:
        """Erasure reference of a subject, from their pseudonym."""
        return self._pseudonym(self._erased_subject_inner, subject_pseudonym.encode())

    def erased_record(self, record_pseudonym: str) -> str:
        """Erasure reference of a record, from its pseudonym."""
        return self._pseudonym(self._erased_record_inner, record_pseudonym.encode())

    def subjects(self, ids: Sequence[object | None]) -> list[str | None]:
        """Pseudonyms of subject ids, None staying None."""
        return [None if s is None else self.subject(s) for s in ids]


def _key_bytes(key: object, what: str) -> bytes:
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise InvalidInput(f"{what} {type(key).__name__} is not supported: expected a str or int")
    text = key if isinstance(key, str) else str(key)
    if not text:
        raise InvalidInput(f"{what} is empty: expected a non-empty str or an int")
    return text.encode("utf-8")


class Vault:
    """Project secrets, subject keys and encrypted personal attributes."""

    def __init__(self, keyring: KeyRing):
        self.keyring = keyring

    def stored_secret(self, conn: Connection, project: str) -> bytes | None:
        """The project's pseudonym secret, or None when it has none yet."""
        table = T["project_secrets"]
        row = conn.execute(select(table.c.wrapped).where(table.c.project == project)).first()
        if row is None:
            return None
        return self.keyring.unwrap(row[0], b"project-secret:" + project.encode())

    def project_secret(self, conn: Connection, project: str) -> bytes:
        """The project's pseudonym secret, created on first use (call it under the append
        lock, so that concurrent first uses agree on one)."""
        secret = self.stored_secret(conn, project)
        if secret is None:
            secret = secrets.token_bytes(32)
            wrapped = self.keyring.wrap(secret, b"project-secret:" + project.encode())
            conn.execute(
                insert(T["project_secrets"]).values(
                    project=project, wrapped=wrapped, created_at=now()
                )
            )
        return secret

    def put(
        self,
        conn: Connection,
        project: str,
        subject: str,
        attributes: dict[str, Any],
        entry: str | None = None,
    ) -> str:
        """Encrypt ``attributes`` under the subject's key; return the entry id."""
        keys = T["subject_keys"]
        context = f"subject-key:{project}/{subject}".encode()
        row = conn.execute(
            select(keys.c.wrapped).where(keys.c.project == project, keys.c.subject == subject)
        ).first()
        if row is None:
            data_key = AESGCM.generate_key(bit_length=256)
            conn.execute(
                insert(keys).values(
                    project=project,
                    subject=subject,
                    created_at=now(),
                    wrapped=self.keyring.wrap(data_key, context),
                )
            )
        else:
            data_key = self.keyring.unwrap(row[0], context)
        entry = entry or new_id()
        nonce = secrets.token_bytes(12)
        plaintext = json.dumps(attributes, sort_keys=True).encode()
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, entry.encode())
        conn.execute(
            insert(T["vault_entries"]).values(
                entry=entry,
                project=project,
                subject=subject,
                nonce=nonce,
                ciphertext=ciphertext,
                created_at=now(),
            )
        )
        return entry

    def get(self, conn: Connection, project: str, subject: str) -> list[dict[str, Any]]:
        """Decrypt every entry stored for a subject, oldest first."""
        keys, entries = T["subject_keys"], T["vault_entries"]
        row = conn.execute(
            select(keys.c.wrapped).where(keys.c.project == project, keys.c.subject == subject)
        ).first()
        if row is None:
            return []
        data_key = AESGCM(self.keyring.unwrap(row[0], f"subject-key:{project}/{subject}".encode()))
        rows = conn.execute(
            select(entries.c.entry, entries.c.nonce, entries.c.ciphertext, entries.c.created_at)
            .where(entries.c.project == project, entries.c.subject == subject)
            .order_by(entries.c.created_at, entries.c.entry)
        ).all()
        return [
            {
                "entry": entry,
                "stored_at": created,
                "attributes": json.loads(data_key.decrypt(nonce, ct, entry.encode())),
            }
            for entry, nonce, ct, created in rows
        ]
