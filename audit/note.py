"""Signed notes and checkpoints with Ed25519 keys, in the formats of C2SP and Go's sumdb.

A **signed note** (https://c2sp.org/signed-note, as implemented by
``golang.org/x/mod/sumdb/note``) is a UTF-8 text that ends in a newline, then a
blank line, then one or more signature lines::

    <text, each line ending in "\\n">
    <blank line>
    — <key name> <base64(4-byte key ID || signature)>

The dash is U+2014 EM DASH followed by a space. The signature is over the text
alone: everything before the blank line, its final newline included. The text is
split from the signatures at the *last* blank line, so the text may hold blank
lines of its own. A note must not contain ASCII control characters other than
newline. A verifier ignores signature lines from keys it does not know, and the
key is the pair (name, key ID), so a line sharing only one of the two is someone
else's.

Keys are Ed25519 (signature type ``0x01``). The **key ID** is the first four
bytes, read as a big-endian uint32, of
``SHA-256(name || "\\n" || 0x01 || 32-byte public key)``. Key names are
non-empty, contain neither Unicode white space nor ``+``, and (here) no control
characters. Keys travel as text:

- verifier key: ``<name>+<8 lowercase hex of key ID>+<base64(0x01 || public key)>``
- signer key: ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>``

A **checkpoint** (https://c2sp.org/tlog-checkpoint) is a note whose text is the
head of a transparency log's Merkle tree (RFC 6962 / RFC 9162)::

    <origin>                 a non-empty line naming the log
    <tree size>              decimal, no leading zeros ("0" for the empty tree)
    <root hash>              standard padded base64 of the 32-byte root
    [extension lines...]     optional, opaque, each non-empty

Base64 throughout is RFC 4648 section 4 (standard alphabet, padded). Every
failure to parse or verify raises :class:`NoteError`, saying what was wrong and
what was expected. Messages never quote private key material.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from registry.settings import write_private_file
from registry.vault import MAX_KEY_FILE, read_key_bytes

__all__ = [
    "ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteError",
    "SigningKey",
    "VerifierKey",
    "open_note",
    "sign_checkpoint",
    "verify_checkpoint",
]

#: Signature type byte of Ed25519 keys and signatures.
ED25519 = 0x01
#: Most signature lines a note may carry (the spec asks verifiers to accept at least 16).
MAX_SIGNATURES = 100

_EM_DASH_PREFIX = "\u2014 "
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_PUBLIC_KEY_SIZE = 32
_SEED_SIZE = 32
_SIGNATURE_SIZE = 64
_ROOT_SIZE = 32
_MAX_TREE_SIZE = 2**64 - 1

# Unicode White_Space (Go's unicode.IsSpace): none may appear in a key name.
_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \u0085\u00a0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX_ID = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class NoteError(ValueError):
    """A note, checkpoint or key that is malformed, or a signature that does not verify."""


# --- encoding helpers ---------------------------------------------------------------------


def _b64decode(text: str, what: str) -> bytes:
    """Canonical standard base64 (padded, no stray characters or bits), else NoteError."""
    if not text.isascii() or not _BASE64.fullmatch(text):
        raise NoteError(f"{what} is not base64: expected the standard alphabet A-Z a-z 0-9 + /")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise NoteError(f"{what} is not valid padded base64 ({exc})") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64 (non-zero trailing bits)")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(
            f"{what} is not valid UTF-8: unpaired surrogate at position {exc.start}"
        ) from None


def _check_no_controls(text: str, what: str) -> None:
    match = _CONTROL.search(text)
    if match is not None:
        line = text.count("\n", 0, match.start()) + 1
        raise NoteError(
            f"{what} contains control character U+{ord(match.group()):04X} on line {line}; "
            "only newline (U+000A) is allowed"
        )


def _name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid key name, or None when it is."""
    if not name:
        return "key name is empty"
    if "+" in name:
        return f"key name {name!r} contains '+'"
    for ch in name:
        if ch in _WHITE_SPACE:
            return f"key name {name!r} contains white space U+{ord(ch):04X}"
        if ch < " ":
            return f"key name {name!r} contains control character U+{ord(ch):04X}"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"key name {name!r} is not valid UTF-8"
    return None


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise NoteError(f"key name must be a str, not {type(name).__name__}")
    problem = _name_problem(name)
    if problem is not None:
        raise NoteError(f"{problem}: expected non-empty UTF-8 without white space or '+'")


def _key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _split_key(text: str, what: str) -> tuple[str, int, bytes]:
    """``<name>+<hex id>+<base64>`` into its parts (key bytes still carry the type byte).

    Messages never echo the base64 part: for a signer key it is the secret.
    """
    parts = text.split("+", 2)  # the base64 key may itself contain '+'
    if len(parts) != 3:
        raise NoteError(
            f"malformed {what}: expected <name>+<8 hex digit key ID>+<base64 key>, "
            f"found {len(parts)} '+'-separated field(s)"
        )
    name, hex_id, key64 = parts
    problem = _name_problem(name)
    if problem is not None:
        raise NoteError(f"malformed {what}: {problem}")
    if not _HEX_ID.fullmatch(hex_id):
        raise NoteError(
            f"malformed {what} for {name!r}: key ID {hex_id!r} is not 8 lowercase hex digits"
        )
    raw = _b64decode(key64, f"key data of {what} {name!r}")
    if not raw:
        raise NoteError(f"malformed {what} for {name!r}: key data is empty")
    if raw[0] != ED25519:
        raise NoteError(
            f"unsupported {what} for {name!r}: signature type 0x{raw[0]:02x}, "
            f"expected 0x{ED25519:02x} (Ed25519)"
        )
    if len(raw) != 1 + _PUBLIC_KEY_SIZE:
        raise NoteError(
            f"malformed {what} for {name!r}: Ed25519 key data is {len(raw) - 1} bytes, "
            f"expected {_PUBLIC_KEY_SIZE}"
        )
    return name, int(hex_id, 16), raw[1:]


def _check_note_text(text: str, what: str = "note text") -> None:
    """Refuses ``text`` (named ``what``) unless it is newline-ended UTF-8 text without
    control characters."""
    if not isinstance(text, str):
        raise NoteError(f"{what} must be a str, not {type(text).__name__}")
    if not text.endswith("\n"):
        raise NoteError(f"{what} must end with a newline (U+000A)")
    _check_utf8(text, what)
    _check_no_controls(text, what)


# --- keys ---------------------------------------------------------------------------------


class VerifierKey:
    """An Ed25519 public key with its name and key ID: checks signatures on notes."""

    __slots__ = ("_public", "_raw", "key_id", "name")

    name: str
    key_id: int

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        _check_name(name)
        self.name = name
        self._public = public_key
        self._raw = public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = _key_id(name, self._raw)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte RFC 8032 encoding of the public key."""
        return self._raw

    @classmethod
    def from_string(cls, text: str) -> VerifierKey:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``; the ID must match."""
        if not isinstance(text, str):
            raise NoteError(f"verifier key must be a str, not {type(text).__name__}")
        if text.startswith(_PRIVATE_PREFIX):
            raise NoteError(
                "this is a signer (PRIVATE+KEY) key, not a verifier key: "
                "give the verifier key (<name>+<hex key ID>+<base64 key>) instead"
            )
        name, key_id, raw = _split_key(text, "verifier key")
        try:
            public = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise NoteError(f"verifier key for {name!r} is not a valid Ed25519 key") from None
        return _matching(cls(name, public), key_id, "verifier key", "the key")

    def to_string(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{_b64encode(bytes([ED25519]) + self._raw)}"

    @classmethod
    def load(cls, path_or_text: str | Path) -> VerifierKey:
        """A verifier key from a file holding it, or from the key string itself."""
        if isinstance(path_or_text, Path):
            return cls._from_file(path_or_text)
        try:
            is_file = Path(path_or_text).is_file()
        except (OSError, ValueError):
            is_file = False
        if is_file:
            return cls._from_file(Path(path_or_text))
        try:
            return cls.from_string(path_or_text.strip())
        except NoteError as exc:
            # The text is not quoted: it may be a signer key given by mistake.
            raise NoteError(f"{exc} (nor is it the path of a readable file)") from None

    @classmethod
    def _from_file(cls, path: Path) -> VerifierKey:
        return _key_file(path, "verifier key", cls.from_string, "{path}: {exc}")

    def verify(self, signed_note: str) -> str:
        """The note's text, if a signature line by this key (name and ID) verifies.

        Lines by other keys are ignored. A line by this key that does not verify
        rejects the whole note, as does a note with no line by this key.
        """
        text, signatures = open_note(signed_note)
        message = text.encode("utf-8")
        matched = 0
        for name, key_id, signature in signatures:
            if name != self.name or key_id != self.key_id:
                continue
            matched += 1
            if len(signature) != _SIGNATURE_SIZE:
                raise NoteError(
                    f"invalid signature by {self._label()}: {len(signature)} bytes, "
                    f"expected a {_SIGNATURE_SIZE}-byte Ed25519 signature"
                )
            try:
                self._public.verify(signature, message)
            except InvalidSignature:
                raise NoteError(
                    f"invalid signature by {self._label()}: the note text or the signature "
                    "was altered, or it was signed by a different key with the same name and ID"
                ) from None
        if not matched:
            found = ", ".join(f"{n}+{k:08x}" for n, k, _ in signatures)
            raise NoteError(f"note has no signature by {self._label()}; it is signed by {found}")
        return text

    def verify_bytes(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's raw Ed25519 signature of ``message`` (a DSSE PAE).

        False for anything else, malformed input included; never raises. A message
        ending in a newline is refused: see :meth:`SigningKey.sign_bytes`.
        """
        if not isinstance(message, bytes) or message.endswith(b"\n"):
            return False
        if not isinstance(signature, bytes) or len(signature) != _SIGNATURE_SIZE:
            return False
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def _label(self) -> str:
        return f"{self.name}+{self.key_id:08x}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifierKey):
            return NotImplemented
        return self.name == other.name and self._raw == other._raw

    def __hash__(self) -> int:
        return hash((self.name, self._raw))

    def __repr__(self) -> str:
        return f"VerifierKey({self.to_string()!r})"


class SigningKey:
    """An Ed25519 private key with its name: signs notes. Keep its string secret."""

    __slots__ = ("_private", "_verifier", "name")

    name: str

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._private = private_key
        self._verifier = VerifierKey(name, private_key.public_key())

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        """A new random key called ``name``."""
        _check_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_string(cls, text: str) -> SigningKey:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``.

        The key ID must match the public key derived from the seed.
        """
        if not isinstance(text, str):
            raise NoteError(f"signer key must be a str, not {type(text).__name__}")
        if not text.startswith(_PRIVATE_PREFIX):
            raise NoteError(
                "malformed signer key: expected PRIVATE+KEY+<name>+<8 hex digit key ID>+"
                "<base64 key>"
            )
        name, key_id, seed = _split_key(text[len(_PRIVATE_PREFIX) :], "signer key")
        key = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        return _matching(key, key_id, "signer key", "its public key")

    def to_string(self) -> str:
        seed = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return (
            f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{_b64encode(bytes([ED25519]) + seed)}"
        )

    @property
    def key_id(self) -> int:
        return self._verifier.key_id

    def verifier(self) -> VerifierKey:
        """The matching public key, to give to whoever checks this key's notes."""
        return self._verifier

    def sign(self, text: str) -> str:
        """The signed note: ``text``, a blank line and this key's signature line."""
        _check_note_text(text)
        signature = self._private.sign(text.encode("utf-8"))
        encoded = _b64encode(self.key_id.to_bytes(4, "big") + signature)
        return f"{text}\n{_EM_DASH_PREFIX}{self.name} {encoded}\n"

    def sign_bytes(self, message: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``message`` (a DSSE PAE); it must not end
        in a newline."""
        # One key signs both notes and DSSE envelopes. A note's signed text always ends
        # in a newline and a DSSE PAE of the log's payloads never does, so refusing (and
        # rejecting, in verify_bytes) raw messages that end in one keeps a signature of
        # either kind from ever passing for the other.
        if not isinstance(message, bytes):
            raise NoteError(f"message must be bytes, not {type(message).__name__}")
        if message.endswith(b"\n"):
            raise NoteError(
                "refusing to sign raw bytes that end in a newline: those are reserved for "
                "note texts; expected a DSSE PAE, which ends with its payload"
            )
        return self._private.sign(message)

    def save(self, path: Path) -> None:
        """Write the key to a new file of mode 0600, creating missing parent directories.

        The key is written whole and fsynced under a temporary name in the same
        directory, hard-linked into place and the directory fsynced
        (``registry.settings.write_private_file``), so another process, or one reading
        after a crash, sees no file or the complete one, never part of it. An existing
        file is never overwritten (FileExistsError).
        """
        path = Path(path)
        refusal = f"refusing to overwrite existing key file {path}"
        data = (self.to_string() + "\n").encode("utf-8")
        if path.is_symlink() or not write_private_file(path, data):
            raise FileExistsError(errno.EEXIST, refusal, str(path))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read a key file written by :meth:`save`.

        Refuses a file that group or others may access: a signer key is a secret.
        """
        path = Path(path)
        malformed = "signer key file {path} is malformed: {exc}"
        return _key_file(path, "signer key", cls.from_string, malformed, private=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return self.to_string() == other.to_string()

    def __hash__(self) -> int:
        return hash(self._verifier)

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, key_id={self.key_id:08x})"


_K = TypeVar("_K", "VerifierKey", "SigningKey")


def _matching(key: _K, key_id: int, what: str, hashed: str) -> _K:
    """``key`` when its key ID is ``key_id`` (the one its text names); else NoteError."""
    if key.key_id != key_id:
        raise NoteError(
            f"{what} for {key.name!r}: key ID {key_id:08x} does not match the key "
            f"({hashed} hashes to {key.key_id:08x})"
        )
    return key


def _key_file(
    path: Path, what: str, parse: Callable[[str], _K], malformed: str, *, private: bool = False
) -> _K:
    """The key in file ``path`` (which must be ``private`` for a secret key); NoteError
    saying why not, ``malformed`` (with ``{path}`` and ``{exc}``) when its text is no key."""
    try:
        text = _read_key_file(path, private=private)
    except OSError as exc:
        raise NoteError(f"cannot read {what} file {path}: {exc.strerror}") from None
    try:
        return parse(text)
    except NoteError as exc:
        raise NoteError(malformed.format(path=path, exc=exc)) from None


def _read_key_file(path: Path, private: bool = False) -> str:
    """The key string in ``path`` (surrounding white space dropped)."""

    def exposed(mode: int) -> NoteError:
        return NoteError(
            f"signer key file {path} is accessible by group or others "
            f"(mode {mode:04o}); it must be private: run `chmod 600 {path}`"
        )

    data = read_key_bytes(path, exposed if private else None)
    if len(data) > MAX_KEY_FILE:
        raise NoteError(f"key file {path} is over {MAX_KEY_FILE} bytes: not a key file")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise NoteError(f"key file {path} is not UTF-8 text") from None
    if not text:
        raise NoteError(f"key file {path} is empty")
    if "\n" in text:
        raise NoteError(f"key file {path} holds more than one line; expected a single key")
    return text


# --- notes --------------------------------------------------------------------------------


def open_note(signed_note: str) -> tuple[str, list[tuple[str, int, bytes]]]:
    """Split a signed note into its text and ``(name, key ID, signature)`` per line.

    Parses only: no signature is checked. The signature bytes exclude the key ID.
    """
    if not isinstance(signed_note, str):
        raise NoteError(f"signed note must be a str, not {type(signed_note).__name__}")
    _check_utf8(signed_note, "signed note")
    _check_no_controls(signed_note, "signed note")
    if not signed_note.endswith("\n"):
        raise NoteError("signed note must end with a newline after its last signature line")
    split = signed_note.rfind("\n\n")
    if split < 0:
        raise NoteError(
            "signed note has no blank line: expected the text, a blank line, "
            "then one or more signature lines"
        )
    text, block = signed_note[: split + 1], signed_note[split + 2 :]
    if not block:
        raise NoteError("signed note has no signature lines after the blank line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"signed note has {len(lines)} signature lines, over {MAX_SIGNATURES}")
    signatures: list[tuple[str, int, bytes]] = []
    for number, line in enumerate(lines, start=1):
        signatures.append(_parse_signature_line(line, number))
    return text, signatures


def _parse_signature_line(line: str, number: int) -> tuple[str, int, bytes]:
    where = f"signature line {number}"
    if not line.startswith(_EM_DASH_PREFIX):
        raise NoteError(
            f"{where} does not start with an em dash and a space (U+2014 U+0020): {line[:40]!r}"
        )
    name, space, encoded = line[len(_EM_DASH_PREFIX) :].partition(" ")
    if not space or not encoded:
        raise NoteError(f"{where}: expected '— <key name> <base64 signature>'")
    problem = _name_problem(name)
    if problem is not None:
        raise NoteError(f"{where}: {problem}")
    raw = _b64decode(encoded, f"{where} ({name})")
    if len(raw) < 5:
        raise NoteError(
            f"{where} ({name}): signature is {len(raw)} bytes; expected a 4-byte key ID "
            "followed by the signature"
        )
    return name, int.from_bytes(raw[:4], "big"), raw[4:]


# --- checkpoints --------------------------------------------------------------------------


def _check_line(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise NoteError(f"checkpoint {what} must be a str, not {type(value).__name__}")
    if not value:
        raise NoteError(f"checkpoint {what} is empty; it must be a non-empty line")
    if "\n" in value:
        raise NoteError(f"checkpoint {what} {value!r} contains a newline; it must be one line")
    _check_utf8(value, f"checkpoint {what}")
    _check_no_controls(value, f"checkpoint {what}")


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log's tree head: origin, tree size, 32-byte root, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text, after checking every field."""
        _check_line(self.origin, "origin")
        if type(self.size) is not int:
            raise NoteError(f"checkpoint size must be an int, not {type(self.size).__name__}")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size {self.size} is out of range 0 to 2**64-1")
        if not isinstance(self.root, bytes) or len(self.root) != _ROOT_SIZE:
            got = f"{len(self.root)} bytes" if isinstance(self.root, bytes) else type(self.root)
            raise NoteError(f"checkpoint root must be {_ROOT_SIZE} bytes (SHA-256), got {got}")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extensions must be a tuple of str")
        for number, extension in enumerate(self.extensions, start=1):
            _check_line(extension, f"extension line {number}")
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from its note text (not the signed note: see verify_checkpoint)."""
        _check_note_text(text, "checkpoint text")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(
                f"checkpoint text has {len(lines)} line(s); expected at least 3: "
                "origin, tree size, root hash"
            )
        for number, line in enumerate(lines, start=1):
            if not line:
                hint = " (give the note text, not the signed note)" if number > 3 else ""
                raise NoteError(f"checkpoint line {number} is empty; lines must be non-empty{hint}")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise NoteError(
                f"checkpoint tree size {size_text!r} is not a decimal number without "
                "sign or leading zeros"
            )
        size = int(size_text)
        if size > _MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {size_text} is over 2**64-1")
        root = _b64decode(root_text, "checkpoint root hash")
        if len(root) != _ROOT_SIZE:
            raise NoteError(
                f"checkpoint root hash is {len(root)} bytes; expected {_ROOT_SIZE} (SHA-256)"
            )
        return cls(origin, size, root, tuple(extensions))


def sign_checkpoint(key: SigningKey, checkpoint: Checkpoint) -> str:
    """The checkpoint as a note signed by ``key``."""
    return key.sign(checkpoint.body())


def verify_checkpoint(key: VerifierKey, signed_note: str, origin: str | None = None) -> Checkpoint:
    """The checkpoint in ``signed_note`` once ``key``'s signature verifies.

    With ``origin``, the checkpoint must also name that log.
    """
    checkpoint = Checkpoint.parse(key.verify(signed_note))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(
            f"checkpoint origin is {checkpoint.origin!r}, expected {origin!r}: "
            "it is the head of a different log"
        )
    return checkpoint
