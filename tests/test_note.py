"""Signed notes, checkpoints and key files (``audit.note``).

Published vectors pin the formats to other implementations: Go's
``golang.org/x/mod/sumdb/note``, the C2SP signed-note specification, and
checkpoints signed by the Go checksum database (sum.golang.org) and by the test
key of Go's sumdb client.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from audit.note import (
    Checkpoint,
    NoteError,
    SigningKey,
    VerifierKey,
    open_note,
    sign_checkpoint,
    verify_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]

# --- published vectors ----------------------------------------------------------------------
# Each signature line is one line in its source; here it is split into adjacent literals.

# golang.org/x/mod/sumdb/note: package documentation (note.go) and note_test.go
# (TestNewSigner, TestSign, TestOpen), github.com/golang/mod.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
    "ngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGw"
    "nWLox33WWd1RvMc+QQ=\n"
)
PETER_NOTE = PETER_TEXT + "\n" + PETER_SIG

# c2sp.org/signed-note (github.com/C2SP/C2SP signed-note.md), "Verifier keys / Example".
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH"
    "3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# The Go checksum database's production key (golang.org/x/mod gosumcheck/main.go) and a
# checkpoint it signed, as quoted in github.com/transparency-dev/formats log/note_test.go
# (TestSumDBNoteParsing).
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = (
    "go.sum database tree\n"
    "6476701\n"
    "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n"
    "\n"
    "— sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nP"
    "RYfvimWEPWL+o3GeoWwOoAw=\n"
)

# The test key of Go's sumdb client and two tree notes it signed (golang.org/x/mod
# sumdb/client_test.go: testSignerKey, testVerifierKey, the TestClientFork transcript,
# whose first header is misquoted there as "go.sum database tree!": the signature is over
# the header without "!", as the test reproduces).
LOCAL_SKEY = (
    "PRIVATE+KEY+localhost.localdev/sumdb+00000c67+AXu6+oaVaOYuQOFrf1V59JK1owcFlJcHwwXHDfDGxSPk"
)
LOCAL_VKEY = "localhost.localdev/sumdb+00000c67+AcTrnkbUA+TU4heY3hkjiSES/DSQniBqIeQ/YppAUtK6"
LOCAL_CHECKPOINTS = [
    (
        5,
        "nWzN20+pwMt62p7jbv1/NlN95ePTlHijabv5zO/s36w=",
        "AAAMZ5/2FVAdMH58kmnz/0h299pwyskEbzDzoa2/YaPdhvLya4YWDFQQxu2TQb5GpwAH4NdWnTwuhILafisyf3CNbgg=",
    ),
    (
        6,
        "wc4SkQt52o5W2nQ8To2ARs+mWuUJjss+sdleoiqxMmM=",
        "AAAMZ6oRNswlEZ6ZZhxrCvgl1MBy+nusq4JU+TG6Fe2NihWLqOzb+y2c2kzRLoCr4tvw9o36ucQEnhc20e4nA4Qc/wc=",
    ),
]

# c2sp.org/tlog-checkpoint (github.com/C2SP/C2SP tlog-checkpoint.md): the example checkpoint.
# The specification publishes no verifier key for it, so it is parsed, not verified.
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u"
    "5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


def test_go_signer_key_parses_and_derives_the_published_verifier() -> None:
    signer = SigningKey.from_string(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.to_string() == PETER_SKEY
    assert signer.verifier().to_string() == PETER_VKEY
    verifier = VerifierKey.from_string(PETER_VKEY)
    assert verifier == signer.verifier()
    assert verifier.key_id == 0xC74F20A3
    assert verifier.to_string() == PETER_VKEY


def test_go_published_note_verifies() -> None:
    assert VerifierKey.from_string(PETER_VKEY).verify(PETER_NOTE) == PETER_TEXT


def test_go_signature_is_reproduced_byte_for_byte() -> None:
    assert SigningKey.from_string(PETER_SKEY).sign(PETER_TEXT) == PETER_NOTE


def test_go_doubly_signed_note_verifies_for_each_signer() -> None:
    note = PETER_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert VerifierKey.from_string(PETER_VKEY).verify(note) == PETER_TEXT
    assert VerifierKey.from_string(ENOCH_VKEY).verify(note) == PETER_TEXT
    text, signatures = open_note(note)
    assert text == PETER_TEXT
    assert [(name, key_id) for name, key_id, _ in signatures] == [
        ("PeterNeumann", 0xC74F20A3),
        ("EnochRoot", 0xAF0CFE78),
    ]
    assert all(len(sig) == 64 for _, _, sig in signatures)


def test_c2sp_signed_note_example_verifies() -> None:
    key = VerifierKey.from_string(C2SP_VKEY)
    assert key.key_id == 0x530D903A
    assert key.verify(C2SP_NOTE) == "This is an example message.\n"


def test_sum_golang_org_checkpoint_verifies() -> None:
    key = VerifierKey.from_string(SUMDB_VKEY)
    checkpoint = verify_checkpoint(key, SUMDB_CHECKPOINT, origin="go.sum database tree")
    assert checkpoint == Checkpoint(
        "go.sum database tree",
        6476701,
        base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk="),
    )
    assert checkpoint.body() + "\n" + SUMDB_CHECKPOINT.split("\n\n")[1] == SUMDB_CHECKPOINT


@pytest.mark.parametrize(("size", "root", "signature"), LOCAL_CHECKPOINTS)
def test_sumdb_test_key_checkpoints_are_reproduced(size: int, root: str, signature: str) -> None:
    signer = SigningKey.from_string(LOCAL_SKEY)
    assert signer.verifier().to_string() == LOCAL_VKEY
    checkpoint = Checkpoint("go.sum database tree", size, base64.b64decode(root))
    signed = sign_checkpoint(signer, checkpoint)
    assert signed == (
        f"go.sum database tree\n{size}\n{root}\n\n— localhost.localdev/sumdb {signature}\n"
    )
    assert verify_checkpoint(VerifierKey.from_string(LOCAL_VKEY), signed) == checkpoint


def test_c2sp_checkpoint_example_parses() -> None:
    text, signatures = open_note(C2SP_CHECKPOINT)
    checkpoint = Checkpoint.parse(text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.body() == text
    [(name, key_id, signature)] = signatures
    assert (name, key_id, len(signature)) == ("example.com/behind-the-sofa", 0x033DE0AE, 64)


def mangled(key: str) -> list[str]:
    """Every proper substring of ``key`` and every one-byte change of it."""
    texts = [
        key[i:j]
        for i in range(len(key) + 1)
        for j in range(i + 1, len(key) + 1)
        if (i, j) != (0, len(key))
    ]
    texts.extend(key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key)))
    return texts


def accepted_of(parse: Callable[[str], object], texts: list[str]) -> list[str]:
    """The ``texts`` that ``parse`` reads without a NoteError."""
    accepted = []
    for text in texts:
        try:
            parse(text)
        except NoteError:
            continue
        accepted.append(text)
    return accepted


def test_go_mangled_verifier_keys_are_rejected() -> None:
    # From note_test.go TestNewVerifier: every proper substring and every one-byte change.
    assert accepted_of(VerifierKey.from_string, mangled(PETER_VKEY)) == []


def test_go_mangled_signer_keys_are_rejected() -> None:
    # From note_test.go TestNewSigner: every proper substring and every one-byte change.
    assert accepted_of(SigningKey.from_string, mangled(PETER_SKEY)) == []


def test_go_wrong_length_and_unknown_algorithm_keys_are_rejected() -> None:
    # From note_test.go TestNewVerifier, each with a key ID adjusted to match. Go decodes
    # base64 leniently; the first key's last group has stray low bits, refused here.
    with pytest.raises(NoteError, match="not canonical base64"):
        VerifierKey.from_string(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
    with pytest.raises(NoteError, match="signature type 0x65, expected 0x01"):
        VerifierKey.from_string(
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )


@pytest.mark.parametrize("length", [0, 31, 33, 35])
def test_wrong_length_key_with_matching_id_is_rejected(length: int) -> None:
    data = b"\x01" + b"\x42" * length
    key_id = hashlib.sha256(b"PeterNeumann\n" + data).digest()[:4].hex()
    text = f"PeterNeumann+{key_id}+{base64.b64encode(data).decode()}"
    with pytest.raises(NoteError, match=f"key data is {length} bytes, expected 32"):
        VerifierKey.from_string(text)
    with pytest.raises(NoteError, match=f"key data is {length} bytes, expected 32"):
        SigningKey.from_string("PRIVATE+KEY+" + text)


def test_key_id_is_sha256_of_name_type_and_key() -> None:
    key = SigningKey.generate("log.example/a")
    public = key.verifier().public_bytes
    digest = hashlib.sha256(b"log.example/a\n\x01" + public).digest()
    assert key.key_id == int.from_bytes(digest[:4], "big")


# --- round trips --------------------------------------------------------------------------


def _root(fill: int = 7) -> bytes:
    return bytes([fill]) * 32


def test_generate_sign_verify_parse_round_trip() -> None:
    key = SigningKey.generate("ledger.example/events")
    checkpoint = Checkpoint("ledger.example/events", 1234, _root(), ("ext one", "ext-two"))
    signed = sign_checkpoint(key, checkpoint)
    assert signed.startswith(checkpoint.body() + "\n— ledger.example/events ")
    assert verify_checkpoint(key.verifier(), signed) == checkpoint
    assert verify_checkpoint(key.verifier(), signed, origin="ledger.example/events") == checkpoint
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


def test_empty_tree_checkpoint_round_trips() -> None:
    key = SigningKey.generate("log")
    checkpoint = Checkpoint("log", 0, _root(0))
    assert checkpoint.body() == "log\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    assert verify_checkpoint(key.verifier(), sign_checkpoint(key, checkpoint)) == checkpoint


def test_largest_tree_size_round_trips() -> None:
    checkpoint = Checkpoint("log", 2**64 - 1, _root())
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    with pytest.raises(NoteError, match="out of range"):
        Checkpoint("log", 2**64, _root()).body()
    with pytest.raises(NoteError, match="over 2\\*\\*64-1"):
        Checkpoint.parse(f"log\n{2**64}\n{base64.b64encode(_root()).decode()}\n")


def test_key_strings_round_trip() -> None:
    key = SigningKey.generate("example.com/log42")
    again = SigningKey.from_string(key.to_string())
    assert again == key
    assert again.key_id == key.key_id
    assert again.verifier() == key.verifier()
    verifier = VerifierKey.from_string(key.verifier().to_string())
    assert verifier == key.verifier()
    assert verifier.to_string() == key.verifier().to_string()
    assert key.to_string().startswith(f"PRIVATE+KEY+example.com/log42+{key.key_id:08x}+")
    assert key.verifier().to_string().startswith(f"example.com/log42+{key.key_id:08x}+")


def test_signing_key_repr_hides_the_secret() -> None:
    key = SigningKey.generate("log")
    # PRIVATE+KEY+<name>+<hash>+<base64 of the key>, whose base64 may hold "+" itself.
    secret = key.to_string().split("+", 4)[4]
    assert len(secret) == 44
    assert secret not in repr(key)
    assert secret not in str(key)


def test_note_text_may_hold_blank_lines() -> None:
    key = SigningKey.generate("notary")
    text = "first\n\nthird, after a blank line\n\n"
    signed = key.sign(text)
    assert key.verifier().verify(signed) == text
    assert open_note(signed)[0] == text


def test_unicode_names_and_text() -> None:
    key = SigningKey.generate("quasimodo.example/salvatore")
    text = (
        "Ognuno sta solo sul cuor della terra\n"
        "trafitto da un raggio di sole:\n"
        "\n"
        "ed è subito sera.\n"
    )
    assert key.verifier().verify(key.sign(text)) == text
    other = SigningKey.generate("журнал")
    assert VerifierKey.from_string(other.verifier().to_string()) == other.verifier()


def test_save_and_load(tmp_path: Path) -> None:
    key = SigningKey.generate("ledger.example/events")
    path = tmp_path / "new" / "dirs" / "signer.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.to_string() + "\n"
    assert SigningKey.load(path) == key
    assert os.listdir(path.parent) == ["signer.key"]  # no temporary file left behind


def test_save_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "signer.key"
    first = SigningKey.generate("log")
    first.save(path)
    with pytest.raises(FileExistsError, match="refusing to overwrite existing key file"):
        SigningKey.generate("log").save(path)
    assert SigningKey.load(path) == first
    assert os.listdir(tmp_path) == ["signer.key"]


def test_load_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "signer.key"
    SigningKey.generate("log").save(path)
    path.chmod(0o644)
    with pytest.raises(NoteError, match=f"mode 0644.*chmod 600 {path}"):
        SigningKey.load(path)
    path.chmod(0o620)
    with pytest.raises(NoteError, match="accessible by group or others"):
        SigningKey.load(path)
    path.chmod(0o600)
    assert SigningKey.load(path).name == "log"


def test_load_names_the_path_of_a_malformed_key_without_quoting_it(tmp_path: Path) -> None:
    key = SigningKey.generate("log")
    good = key.to_string()
    bad_id = f"{(key.key_id + 1) % 2**32:08x}"
    path = tmp_path / "signer.key"
    path.write_text(good.replace(f"+{key.key_id:08x}+", f"+{bad_id}+") + "\n")
    path.chmod(0o600)
    with pytest.raises(NoteError, match=f"signer key file {path} is malformed") as info:
        SigningKey.load(path)
    # The key material (after PRIVATE+KEY+name+id+; base64 itself may hold a "+").
    assert good.split("+", 4)[4] not in str(info.value)
    assert "does not match the key" in str(info.value)

    path.write_text("not a key\n")
    with pytest.raises(NoteError, match=f"signer key file {path} is malformed"):
        SigningKey.load(path)
    with pytest.raises(NoteError, match="cannot read signer key file"):
        SigningKey.load(tmp_path / "missing.key")
    path.write_text(key.verifier().to_string() + "\n")
    with pytest.raises(NoteError, match="expected PRIVATE\\+KEY\\+"):
        SigningKey.load(path)


def test_verifier_key_load_from_file_string_or_path(tmp_path: Path) -> None:
    verifier = SigningKey.generate("log").verifier()
    path = tmp_path / "log.pub"
    path.write_text(verifier.to_string() + "\n")
    assert VerifierKey.load(path) == verifier
    assert VerifierKey.load(str(path)) == verifier
    assert VerifierKey.load(verifier.to_string()) == verifier
    assert VerifierKey.load(PETER_VKEY + "\n") == VerifierKey.from_string(PETER_VKEY)
    with pytest.raises(NoteError, match="nor is it the path of a readable file"):
        VerifierKey.load(str(tmp_path / "missing.pub"))
    with pytest.raises(NoteError, match="signer \\(PRIVATE\\+KEY\\) key") as info:
        VerifierKey.load(PETER_SKEY)
    assert PETER_SKEY.rsplit("+", 1)[1] not in str(info.value)
    path.write_text("log+00000000+AAAA\n")
    with pytest.raises(NoteError, match=f"^{path}: "):
        VerifierKey.load(path)


def test_verifier_key_refuses_a_signer_key() -> None:
    with pytest.raises(NoteError, match="signer \\(PRIVATE\\+KEY\\) key, not a verifier key"):
        VerifierKey.from_string(PETER_SKEY)


# --- rejections ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    return SigningKey.generate("ledger.example/events")


@pytest.fixture(scope="module")
def signed(signer: SigningKey) -> str:
    return sign_checkpoint(signer, Checkpoint("ledger.example/events", 42, _root(), ("x",)))


def _lines(note: str) -> list[str]:
    return note.split("\n")


@pytest.mark.parametrize("line", [0, 1, 2, 3], ids=["origin", "size", "root", "extension"])
def test_tampered_text_line_is_rejected(signer: SigningKey, signed: str, line: int) -> None:
    lines = _lines(signed)
    replacement = {
        0: "ledger.example/other",
        1: "43",
        2: base64.b64encode(_root(8)).decode(),
        3: "y",
    }[line]
    lines[line] = replacement
    with pytest.raises(NoteError, match=r"invalid signature by ledger\.example/events"):
        verify_checkpoint(signer.verifier(), "\n".join(lines))


def test_tampered_signature_bit_is_rejected(signer: SigningKey, signed: str) -> None:
    text, [(name, key_id, signature)] = open_note(signed)
    for bit in (0, 100, 511):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        encoded = base64.b64encode(key_id.to_bytes(4, "big") + bytes(flipped)).decode()
        with pytest.raises(NoteError, match="invalid signature by"):
            signer.verifier().verify(f"{text}\n— {name} {encoded}\n")


def test_tampered_key_id_means_no_signature_by_the_key(signer: SigningKey, signed: str) -> None:
    text, [(name, key_id, signature)] = open_note(signed)
    encoded = base64.b64encode((key_id ^ 1).to_bytes(4, "big") + signature).decode()
    with pytest.raises(NoteError, match=r"note has no signature by ledger\.example/events"):
        signer.verifier().verify(f"{text}\n— {name} {encoded}\n")


def test_truncated_signature_by_the_key_is_rejected(signer: SigningKey, signed: str) -> None:
    text, [(name, key_id, signature)] = open_note(signed)
    encoded = base64.b64encode(key_id.to_bytes(4, "big") + signature[:63]).decode()
    with pytest.raises(NoteError, match="63 bytes, expected a 64-byte Ed25519 signature"):
        signer.verifier().verify(f"{text}\n— {name} {encoded}\n")


def test_wrong_key_other_name(signed: str) -> None:
    other = SigningKey.generate("someone.else/log")
    with pytest.raises(NoteError, match=r"no signature by someone\.else/log.*signed by ledger"):
        other.verifier().verify(signed)


def test_wrong_key_same_name(signed: str) -> None:
    impostor = SigningKey.generate("ledger.example/events")
    with pytest.raises(NoteError, match=r"no signature by ledger\.example/events"):
        verify_checkpoint(impostor.verifier(), signed)


def test_signature_by_another_key_under_this_name_and_id(signer: SigningKey) -> None:
    # A line carrying this key's name and ID is checked, whoever made it.
    text = Checkpoint("ledger.example/events", 1, _root()).body()
    forged = SigningKey.generate("ledger.example/events").sign(text)
    _, [(name, _, signature)] = open_note(forged)
    encoded = base64.b64encode(signer.key_id.to_bytes(4, "big") + signature).decode()
    with pytest.raises(NoteError, match=r"invalid signature by ledger\.example/events"):
        signer.verifier().verify(f"{text}\n— {name} {encoded}\n")


def test_unknown_signers_are_ignored(signer: SigningKey) -> None:
    text = Checkpoint("ledger.example/events", 1, _root()).body()
    ours = signer.sign(text).split("\n\n")[-1]
    # Share the name only, the key ID only, or neither: all someone else's lines.
    same_name = SigningKey.generate(signer.name).sign(text).split("\n\n")[-1]
    garbage = base64.b64encode(signer.key_id.to_bytes(4, "big") + b"\x00" * 64).decode()
    same_id = f"— witness.example {garbage}\n"
    stranger = SigningKey.generate("witness.example/w1").sign(text).split("\n\n")[-1]
    note = f"{text}\n{same_name}{same_id}{stranger}{ours}"
    assert signer.verifier().verify(note) == text
    assert len(open_note(note)[1]) == 4


def test_one_bad_line_by_the_key_rejects_the_note(signer: SigningKey) -> None:
    text = "hello\n"
    good = signer.sign(text).split("\n\n")[-1]
    bad = signer.sign("other\n").split("\n\n")[-1]
    with pytest.raises(NoteError, match="invalid signature"):
        signer.verifier().verify(f"{text}\n{good}{bad}")


def test_missing_blank_line(signer: SigningKey, signed: str) -> None:
    with pytest.raises(NoteError, match="no blank line"):
        signer.verifier().verify(signed.replace("\n\n", "\n"))


def test_no_signature_lines(signer: SigningKey, signed: str) -> None:
    text = signed.split("\n\n")[0] + "\n"
    with pytest.raises(NoteError, match="no signature lines after the blank line"):
        signer.verifier().verify(text + "\n")
    with pytest.raises(NoteError, match="no blank line"):
        signer.verifier().verify(text)


@pytest.mark.parametrize("prefix", ["- ", "-- ", "—", "—\u00a0", " — ", "\u2013 "])
def test_signature_line_without_em_dash(signer: SigningKey, signed: str, prefix: str) -> None:
    with pytest.raises(NoteError, match="does not start with an em dash and a space"):
        signer.verifier().verify(signed.replace("— ", prefix))


def test_signature_line_without_signature(signer: SigningKey, signed: str) -> None:
    text = signed.split("\n\n")[0] + "\n"
    for line in ("— ledger.example/events\n", "— ledger.example/events \n"):
        with pytest.raises(NoteError, match="expected '— <key name> <base64 signature>'"):
            signer.verifier().verify(f"{text}\n{line}")


def test_signature_line_with_invalid_name(signer: SigningKey, signed: str) -> None:
    text = signed.split("\n\n")[0] + "\n"
    encoded = signed.rsplit(" ", 1)[1]
    with pytest.raises(NoteError, match="contains '\\+'"):
        open_note(f"{text}\n— a+b {encoded}")


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("not base64!", "not base64"),
        ("AAAA AAAA", "not base64"),
        ("AAAAA", "not valid padded base64"),
        ("AAAAAAA", "not valid padded base64"),
        ("AAAAAB==", "not canonical base64"),
        ("ÀAAA", "not base64"),
    ],
)
def test_bad_base64_signature(signer: SigningKey, encoded: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        signer.verifier().verify(f"text\n\n— {signer.name} {encoded}\n")


@pytest.mark.parametrize("length", [1, 3, 4])
def test_signature_too_short_for_a_key_id(signer: SigningKey, length: int) -> None:
    encoded = base64.b64encode(b"\x01" * length).decode()
    with pytest.raises(NoteError, match=f"signature is {length} bytes; expected a 4-byte key ID"):
        open_note(f"text\n\n— {signer.name} {encoded}\n")


@pytest.mark.parametrize(
    ("hex_id", "message"),
    [
        ("c74f20a", "key ID 'c74f20a' is not 8 lowercase hex digits"),
        ("c74f20a30", "key ID 'c74f20a30' is not 8 lowercase hex digits"),
        ("C74F20A3", "key ID 'C74F20A3' is not 8 lowercase hex digits"),
        ("c74f20ag", "is not 8 lowercase hex digits"),
        ("", "is not 8 lowercase hex digits"),
    ],
)
def test_verifier_key_with_bad_key_id_length(hex_id: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        VerifierKey.from_string(PETER_VKEY.replace("c74f20a3", hex_id))


def test_verifier_key_with_wrong_hash() -> None:
    with pytest.raises(NoteError, match=r"key ID c74f20a4 does not match the key.*c74f20a3"):
        VerifierKey.from_string(PETER_VKEY.replace("c74f20a3", "c74f20a4"))


def test_signer_key_with_wrong_hash() -> None:
    with pytest.raises(NoteError, match="key ID c74f20a4 does not match the key") as info:
        SigningKey.from_string(PETER_SKEY.replace("c74f20a3", "c74f20a4"))
    assert PETER_SKEY.rsplit("+", 2)[1] not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected <name>\\+<8 hex digit key ID>\\+<base64 key>"),
        ("PeterNeumann", "found 1 '\\+'-separated field"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name is empty"),
        ("Peter Neumann+c74f20a3+AAAA", "white space U\\+0020"),
        ("Peter\u3000Neumann+c74f20a3+AAAA", "white space U\\+3000"),
        ("PeterNeumann+c74f20a3+", "expected the standard alphabet|key data is empty"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "padded base64"),
    ],
)
def test_malformed_verifier_keys(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        VerifierKey.from_string(text)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("01", "'01' is not a decimal number without sign or leading zeros"),
        ("00", "without sign or leading zeros"),
        ("-1", "'-1' is not a decimal number"),
        ("+1", "'\\+1' is not a decimal number"),
        ("1_000", "not a decimal number"),
        ("0x10", "not a decimal number"),
        ("1e3", "not a decimal number"),
        (" 1", "not a decimal number"),
        ("\u0663", "not a decimal number"),  # ARABIC-INDIC DIGIT THREE: int() would take it
        ("", "line 2 is empty"),
    ],
)
def test_checkpoint_bad_size(size: str, message: str) -> None:
    root = base64.b64encode(_root()).decode()
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(f"log\n{size}\n{root}\n")


def test_checkpoint_bad_size_in_a_signed_note(signer: SigningKey) -> None:
    root = base64.b64encode(_root()).decode()
    signed = signer.sign(f"{signer.name}\n01\n{root}\n")
    with pytest.raises(NoteError, match="'01' is not a decimal number"):
        verify_checkpoint(signer.verifier(), signed)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_checkpoint_root_not_32_bytes(length: int) -> None:
    encoded = base64.b64encode(b"\x05" * length).decode()
    match = f"root hash is {length} bytes; expected 32" if length else "line 3 is empty"
    with pytest.raises(NoteError, match=match):
        Checkpoint.parse(f"log\n1\n{encoded}\n")
    with pytest.raises(NoteError, match=f"root must be 32 bytes \\(SHA-256\\), got {length} bytes"):
        Checkpoint("log", 1, b"\x05" * length).body()


def test_checkpoint_root_must_be_canonical_base64() -> None:
    encoded = base64.b64encode(_root()).decode()
    loose = encoded[:-2] + chr(ord(encoded[-2]) + 1) + "="  # same bytes, stray low bits
    assert base64.b64decode(loose) == _root()
    with pytest.raises(NoteError, match="not canonical base64"):
        Checkpoint.parse(f"log\n1\n{loose}\n")
    with pytest.raises(NoteError, match="not valid padded base64"):
        Checkpoint.parse(f"log\n1\n{encoded.rstrip('=')}\n")
    url_safe = base64.urlsafe_b64encode(b"\xfb" * 32).decode()
    with pytest.raises(NoteError, match="not base64"):
        Checkpoint.parse(f"log\n1\n{url_safe}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("log\n1\n", "has 2 line\\(s\\); expected at least 3"),
        ("log\n", "has 1 line\\(s\\)"),
        ("\n1\nAAAA\n", "line 1 is empty"),
        ("log\n1\n{root}\n\next\n", "line 4 is empty.*not the signed note"),
        ("log\n1\n{root}", "must end with a newline"),
        ("log\r\n1\r\n{root}\r\n", "control character U\\+000D on line 1"),
        ("log\n1\n{root}\nbad\tline\n", "control character U\\+0009 on line 4"),
        ("lo\ud800g\n1\n{root}\n", "not valid UTF-8"),
    ],
)
def test_checkpoint_malformed_text(text: str, message: str) -> None:
    root = base64.b64encode(_root()).decode()
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(text.replace("{root}", root))


@pytest.mark.parametrize(
    ("checkpoint", "message"),
    [
        (Checkpoint("", 1, _root()), "origin is empty"),
        (Checkpoint("a\nb", 1, _root()), "origin 'a\\\\nb' contains a newline"),
        (Checkpoint("a\x7fb\x00", 1, _root()), "origin contains control character U\\+0000"),
        (Checkpoint("log", -1, _root()), "size -1 is out of range"),
        (Checkpoint("log", True, _root()), "size must be an int, not bool"),
        (Checkpoint("log", "1", _root()), "size must be an int, not str"),  # type: ignore[arg-type]
        (Checkpoint("log", 1, "x" * 32), "root must be 32 bytes"),  # type: ignore[arg-type]
        (Checkpoint("log", 1, _root(), ("",)), "extension line 1 is empty"),
        (Checkpoint("log", 1, _root(), ("ok", "x\ny")), "extension line 2 'x\\\\ny' contains"),
        (Checkpoint("log", 1, _root(), ["x"]), "extensions must be a tuple"),  # type: ignore[arg-type]
    ],
)
def test_checkpoint_body_refuses_bad_fields(checkpoint: Checkpoint, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        checkpoint.body()
    with pytest.raises(NoteError, match=message):
        sign_checkpoint(SigningKey.generate("log"), checkpoint)


def test_missing_trailing_newline(signer: SigningKey, signed: str) -> None:
    with pytest.raises(NoteError, match="must end with a newline after its last signature line"):
        signer.verifier().verify(signed[:-1])
    with pytest.raises(NoteError, match="note text must end with a newline"):
        signer.sign("no newline")
    with pytest.raises(NoteError, match="checkpoint text must end with a newline"):
        Checkpoint.parse(open_note(signed)[0][:-1])


def test_origin_mismatch(signer: SigningKey, signed: str) -> None:
    with pytest.raises(
        NoteError,
        match=r"origin is 'ledger\.example/events', expected 'ledger\.example/access'",
    ):
        verify_checkpoint(signer.verifier(), signed, origin="ledger.example/access")


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("te\x01xt\n\n{sig}", "control character U\\+0001 on line 1"),
        ("text\r\n\n{sig}", "control character U\\+000D"),
        ("text\n\n{sig}".replace("\n\n", "\n\n\x00"), "control character U\\+0000 on line 3"),
        ("te\udcffxt\n\n{sig}", "not valid UTF-8"),
    ],
)
def test_control_characters_and_invalid_utf8(signer: SigningKey, note: str, message: str) -> None:
    sig = signer.sign("text\n").split("\n\n")[-1]
    with pytest.raises(NoteError, match=message):
        signer.verifier().verify(note.replace("{sig}", sig))


def test_sign_refuses_bad_text(signer: SigningKey) -> None:
    with pytest.raises(NoteError, match="control character U\\+0007 on line 2"):
        signer.sign("ok\nbell\a\n")
    with pytest.raises(NoteError, match="not valid UTF-8"):
        signer.sign("\ud800\n")
    with pytest.raises(NoteError, match="must be a str"):
        signer.sign(b"bytes\n")  # type: ignore[arg-type]


def test_too_many_signature_lines(signer: SigningKey) -> None:
    line = signer.sign("text\n").split("\n\n")[-1]
    assert signer.verifier().verify("text\n\n" + line * 100) == "text\n"
    with pytest.raises(NoteError, match="101 signature lines, over 100"):
        signer.verifier().verify("text\n\n" + line * 101)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "key name is empty"),
        ("a b", "white space U\\+0020"),
        ("a\u00a0b", "white space U\\+00A0"),
        ("a\u2028b", "white space U\\+2028"),
        ("a+b", "contains '\\+'"),
        ("a\x01b", "control character U\\+0001"),
        ("a\udc80", "not valid UTF-8"),
    ],
)
def test_invalid_key_names(name: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        SigningKey.generate(name)


# --- concurrent saves ---------------------------------------------------------------------


def test_concurrent_saves_from_threads(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signer.key"
    keys = [SigningKey.generate(f"writer{i}") for i in range(16)]
    barrier = threading.Barrier(len(keys) + 1)
    outcomes: list[str] = []
    seen: list[str] = []
    done = threading.Event()

    def save(key: SigningKey) -> None:
        barrier.wait()
        try:
            key.save(path)
        except FileExistsError:
            outcomes.append("exists")
        else:
            outcomes.append(key.name)

    def watch() -> None:
        barrier.wait()
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.append(path.read_text())

    threads = [threading.Thread(target=save, args=(key,)) for key in keys]
    reader = threading.Thread(target=watch)
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()

    winners = [name for name in outcomes if name != "exists"]
    assert len(winners) == 1
    assert outcomes.count("exists") == len(keys) - 1
    winner = next(key for key in keys if key.name == winners[0])
    assert SigningKey.load(path) == winner
    assert set(seen) <= {winner.to_string() + "\n"}  # never part of a file
    assert os.listdir(path.parent) == ["signer.key"]


_SAVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from audit.note import SigningKey

    path, go, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    key = SigningKey.generate(name)
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    try:
        key.save(path)
    except FileExistsError as exc:
        print("exists", exc)
    else:
        print("saved", key.to_string())
    """
)


@pytest.mark.slow
def test_concurrent_saves_from_processes(tmp_path: Path) -> None:
    path = tmp_path / "signer.key"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(path), str(go), f"writer{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for i in range(8)
    ]
    time.sleep(0.5)  # let every process import and wait at the start line
    go.touch()
    results = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), results
    outputs = [out.strip() for out, _ in results]
    saved = [out.split(" ", 1)[1] for out in outputs if out.startswith("saved ")]
    refused = [out for out in outputs if out.startswith("exists ")]
    assert len(saved) == 1, outputs
    assert len(refused) == len(processes) - 1
    assert all("refusing to overwrite existing key file" in out for out in refused)
    assert path.read_text() == saved[0] + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["go", "signer.key"]
