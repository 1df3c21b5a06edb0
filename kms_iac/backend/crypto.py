"""Key material at rest and the ciphertext blob format.

Material is wrapped under a root key (AES-256-GCM) so no plaintext key material lands
in the data dir. Ciphertext blobs carry the key id and material version in an
authenticated header; the encryption context is bound in as additional data, so a
blob cannot be altered, truncated, moved to another key or decrypted with another
context undetected.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import NamedTuple
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms_iac.backend.entropy import random_bytes

ROOT_KEY_FILE = "root.key"
ROOT_KEY_LEN = 32
BLOB_MAGIC = b"KIAC"
BLOB_FORMAT = 1
NONCE_LEN = 12
TAG_LEN = 16


class NotOurFormat(ValueError):
    """The blob was not produced by this backend at all."""


class AuthenticationFailed(ValueError):
    """The blob is ours but was altered, truncated, or used with the wrong context."""


def create_root_key(data_dir: Path) -> bytes:
    """Create the data dir's root key unless it exists, and return it.

    Written to a temporary file, synced, then linked into place: a crash at any point
    leaves either no root key or a whole one, and ``link`` fails if another process won
    (whose key is then used). Callers check first that creating one is safe
    (:func:`kms_iac.backend.datadir.open_data_dir`).
    """
    path = data_dir / ROOT_KEY_FILE
    if not path.exists():
        tmp = data_dir / f".{ROOT_KEY_FILE}.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(ROOT_KEY_LEN))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first; use theirs
        finally:
            os.unlink(tmp)
        dfd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    raw = path.read_bytes()
    if len(raw) != ROOT_KEY_LEN:
        raise ValueError(f"{path} is not a {ROOT_KEY_LEN}-byte root key")
    return raw


class MaterialWrapper:
    """Wraps per-key material under the root key, bound to the key id and version."""

    def __init__(self, root_key: bytes) -> None:
        self._aead = AESGCM(root_key)
        # for keyed fingerprints (e.g. "is this the same imported material?"), never for encryption
        self.fingerprint_key = hashlib.sha256(b"kms-iac fingerprint key\0" + root_key).digest()

    def seal_blob(self, label: bytes, data: bytes) -> bytes:
        """Wrap other secrets (import private keys) under the root key, bound to ``label``."""
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, data, label)

    def open_blob(self, label: bytes, wrapped: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], label)

    def wrap(self, key_id: str, version: int, material: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, material, f"{key_id}#{version}".encode())

    def unwrap(self, key_id: str, version: int, wrapped: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], f"{key_id}#{version}".encode())


def context_bytes(context: dict[str, str] | None) -> bytes:
    """Canonical form of an encryption context: order of keys never matters, as in AWS."""
    if not context:
        return b""
    return json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class BlobHeader(NamedTuple):  # read for every Decrypt: a tuple is made in a third of a frozen dataclass's time
    key_id: str
    version: int
    raw: bytes  # the header bytes, authenticated as additional data


def _header(key_id: str, version: int, nonce: bytes) -> bytes:
    kid = key_id.encode()
    return BLOB_MAGIC + bytes([BLOB_FORMAT, len(kid)]) + kid + struct.pack(">I", version) + nonce


_AEADS: dict[bytes, AESGCM] = {}


def _aead(material: bytes) -> AESGCM:
    """The AES-GCM object of a key's material, made once (its key schedule) and kept while the
    material is in use: at most 256, then all are let go."""
    aead = _AEADS.get(material)
    if aead is None:
        if len(_AEADS) >= 256:
            _AEADS.clear()
        aead = _AEADS[material] = AESGCM(material)
    return aead


def seal(material: bytes, key_id: str, version: int, plaintext: bytes, context: dict | None) -> bytes:
    nonce = random_bytes(NONCE_LEN)
    header = _header(key_id, version, nonce)
    return header + _aead(material).encrypt(nonce, plaintext, header + context_bytes(context) if context else header)


def read_header(blob: bytes) -> BlobHeader:
    if len(blob) < 6 or blob[:4] != BLOB_MAGIC or blob[4] != BLOB_FORMAT:
        raise NotOurFormat()
    n = blob[5]
    end = 6 + n + 4 + NONCE_LEN
    if len(blob) < end + TAG_LEN:
        raise AuthenticationFailed()
    try:
        key_id = blob[6 : 6 + n].decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed() from None
    (version,) = struct.unpack(">I", blob[6 + n : 10 + n])
    return BlobHeader(key_id, version, blob[:end])


def open_blob(material: bytes, header: BlobHeader, blob: bytes, context: dict | None) -> bytes:
    nonce = header.raw[-NONCE_LEN:]
    try:
        return _aead(material).decrypt(nonce, blob[len(header.raw) :],
                                       header.raw + context_bytes(context) if context else header.raw)
    except InvalidTag:
        raise AuthenticationFailed() from None
