"""The local stand-in for a CloudHSM cluster: a SoftHSM2 token driven over PKCS#11.

Each data dir has its own SoftHSM2 configuration (``<data-dir>/hsm/softhsm2.conf``)
whose token directory lives under ``<data-dir>/hsm/tokens``; a "cluster" is one token
there. Keys in a CloudHSM key store are generated inside the token (non-extractable,
sensitive AES-256) and every encryption with them is AES-GCM performed by the token:
no key material of such keys ever exists outside the token, in memory or in SQLite.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the library is initialised, and a process loads
the library once, so switching between data dirs finalises and re-initialises it
(all PKCS#11 work is serialised by one lock). Each process keeps at most one logged-in
session per token, opened lazily with the key store's password.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from kms_iac.backend import crypto

LIB_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
HSM_DIR = "hsm"
CONF_FILE = "softhsm2.conf"
KEY_BITS = 256


class HsmError(Exception):
    """The token could not do what was asked."""


class HsmUnavailable(HsmError):
    """SoftHSM2 or the PKCS#11 binding is not installed."""


class TokenNotFound(HsmError):
    """No token with that label in this data dir."""


class InvalidCredentials(HsmError):
    """The token refused the user PIN (the key store password)."""


class HsmKeyMissing(HsmError):
    """The token has no key with that label."""


def library_path() -> str:
    env = os.environ.get("KMS_IAC_PKCS11_LIB")
    if env:
        return env
    for cand in LIB_CANDIDATES:
        if os.path.exists(cand):
            return cand
    raise HsmUnavailable("SoftHSM2 is not installed (no libsofthsm2.so found); run scripts/setup.sh "
                         "or `apt-get install softhsm2`, or set KMS_IAC_PKCS11_LIB.")


def available() -> bool:
    try:
        library_path()
        import pkcs11  # noqa: F401
    except (HsmUnavailable, ImportError):
        return False
    return shutil.which("softhsm2-util") is not None


def conf_path(data_dir: Path | str) -> Path:
    """This data dir's SoftHSM2 configuration, written on first use."""
    base = Path(data_dir).resolve() / HSM_DIR
    tokens = base / "tokens"
    conf = base / CONF_FILE
    if not conf.exists():
        tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = base / f".{CONF_FILE}.{os.getpid()}"
        tmp.write_text(
            f"directories.tokendir = {tokens}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
            "slots.mechanisms = ALL\n"
            "library.reset_on_fork = true\n"
        )
        os.replace(tmp, conf)
    return conf


def init_token(data_dir: Path | str, label: str, so_pin: str, user_pin: str) -> str:
    """Initialise a new token labelled ``label``; return its serial number."""
    util = shutil.which("softhsm2-util")
    if util is None:
        raise HsmUnavailable("softhsm2-util not found: install SoftHSM2 (scripts/setup.sh does).")
    conf = conf_path(data_dir)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    proc = subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", user_pin],
        env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise HsmError(f"softhsm2-util --init-token failed: {(proc.stderr or proc.stdout).strip()}")
    return MANAGER.token_serial(conf, label)


class _Manager:
    """The process's one PKCS#11 library instance and its logged-in sessions."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._lib = None
        self._conf: str | None = None
        self._sessions: dict[str, object] = {}  # token label -> logged-in session (for self._conf)

    # -- library and tokens ---------------------------------------------------------

    def _activate(self, conf: Path, force: bool = False) -> None:
        conf_s = str(conf)
        if self._lib is not None and self._conf == conf_s and not force:
            return
        for s in self._sessions.values():
            try:
                s.close()  # type: ignore[attr-defined]
            except Exception:
                pass
        self._sessions = {}
        os.environ["SOFTHSM2_CONF"] = conf_s
        if self._lib is None:
            try:
                import pkcs11
            except ImportError as exc:
                raise HsmUnavailable("python-pkcs11 is not installed") from exc
            self._lib = pkcs11.lib(library_path())
            if self._conf is None:
                self._lib.reinitialize()  # make sure this conf is the one read
        else:
            self._lib.reinitialize()
        self._conf = conf_s

    def _token(self, conf: Path, label: str):
        self._activate(conf)
        for attempt in range(2):
            for tok in self._lib.get_tokens():  # type: ignore[union-attr]
                if tok.label == label:
                    return tok
            if attempt == 0:  # initialised by another process since we loaded the library
                self._activate(conf, force=True)
        raise TokenNotFound(f"no token labelled {label} in {conf.parent}")

    def token_serial(self, conf: Path, label: str) -> str:
        with self.lock:
            serial = self._token(conf, label).serial
            return serial.decode() if isinstance(serial, bytes) else str(serial)

    # -- sessions -------------------------------------------------------------------

    def login(self, conf: Path, label: str, pin: str):
        """Log in to the token afresh (checks ``pin``); the session is kept for later calls."""
        import pkcs11.exceptions as px

        with self.lock:
            tok = self._token(conf, label)
            old = self._sessions.pop(label, None)
            if old is not None:
                try:
                    old.close()  # type: ignore[attr-defined]
                except Exception:
                    pass
            try:
                session = tok.open(rw=True, user_pin=pin)
            except (px.PinIncorrect, px.PinLenRange, px.PinInvalid, px.PinLocked) as exc:
                raise InvalidCredentials(type(exc).__name__) from None
            self._sessions[label] = session
            return session

    def logout(self, conf: Path, label: str) -> None:
        with self.lock:
            if self._conf != str(conf):
                return
            s = self._sessions.pop(label, None)
            if s is not None:
                try:
                    s.close()  # type: ignore[attr-defined]
                except Exception:
                    pass

    def _session(self, conf: Path, label: str, pin: str):
        self._activate(conf)
        s = self._sessions.get(label)
        return s if s is not None else self.login(conf, label, pin)

    def _with_session(self, conf: Path, label: str, pin: str, fn):
        import pkcs11.exceptions as px

        with self.lock:
            try:
                return fn(self._session(conf, label, pin))
            except (px.SessionHandleInvalid, px.SessionClosed, px.UserNotLoggedIn,
                    px.DeviceRemoved, px.TokenNotPresent):
                self._sessions.pop(label, None)
                return fn(self.login(conf, label, pin))

    # -- keys and cryptography (all inside the token) ----------------------------------

    def generate_key(self, conf: Path, label: str, pin: str, key_label: str) -> None:
        from pkcs11 import Attribute, KeyType

        def gen(s):
            s.generate_key(
                KeyType.AES, KEY_BITS, label=key_label, store=True,
                template={
                    Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False, Attribute.ENCRYPT: True, Attribute.DECRYPT: True,
                    Attribute.WRAP: False, Attribute.UNWRAP: False, Attribute.MODIFIABLE: False,
                },
            )

        self._with_session(conf, label, pin, gen)

    def _key(self, s, key_label: str):
        import pkcs11.exceptions as px
        from pkcs11 import KeyType, ObjectClass

        try:
            return s.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=key_label)
        except px.NoSuchKey:
            raise HsmKeyMissing(key_label) from None

    def key_attributes(self, conf: Path, label: str, pin: str, key_label: str) -> dict[str, object]:
        from pkcs11 import Attribute

        def attrs(s):
            k = self._key(s, key_label)
            return {"extractable": bool(k[Attribute.EXTRACTABLE]), "sensitive": bool(k[Attribute.SENSITIVE]),
                    "token": bool(k[Attribute.TOKEN]), "bits": int(k[Attribute.VALUE_LEN]) * 8}

        return self._with_session(conf, label, pin, attrs)

    def gcm_encrypt(self, conf: Path, label: str, pin: str, key_label: str, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams

        def enc(s):
            return self._key(s, key_label).encrypt(data, mechanism=Mechanism.AES_GCM,
                                                    mechanism_param=GCMParams(nonce, aad or None))

        return self._with_session(conf, label, pin, enc)

    def gcm_decrypt(self, conf: Path, label: str, pin: str, key_label: str, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        import pkcs11.exceptions as px
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams

        def dec(s):
            try:
                return self._key(s, key_label).decrypt(data, mechanism=Mechanism.AES_GCM,
                                                        mechanism_param=GCMParams(nonce, aad or None))
            except (px.GeneralError, px.EncryptedDataInvalid, px.EncryptedDataLenRange, px.DataInvalid):
                raise crypto.AuthenticationFailed() from None

        return self._with_session(conf, label, pin, dec)

    def random(self, conf: Path, label: str, pin: str, n: int) -> bytes:
        return self._with_session(conf, label, pin, lambda s: s.generate_random(n * 8))


MANAGER = _Manager()


def key_label(key_id: str, version: int) -> str:
    """The CKA_LABEL of a KMS key's material version inside the token."""
    return f"{key_id}#{version}"


def seal(token: TokenRef, key_id: str, version: int, plaintext: bytes, context: dict | None) -> bytes:
    """The ciphertext blob of :func:`crypto.seal`, with the AES-GCM done by the token."""
    nonce = os.urandom(crypto.NONCE_LEN)
    header = crypto._header(key_id, version, nonce)
    aad = header + crypto.context_bytes(context)
    return header + MANAGER.gcm_encrypt(token.conf, token.label, token.pin, key_label(key_id, version), nonce, plaintext, aad)


def open_blob(token: TokenRef, header: crypto.BlobHeader, blob: bytes, context: dict | None) -> bytes:
    nonce = header.raw[-crypto.NONCE_LEN:]
    aad = header.raw + crypto.context_bytes(context)
    return MANAGER.gcm_decrypt(token.conf, token.label, token.pin, key_label(header.key_id, header.version),
                               nonce, blob[len(header.raw):], aad)


class TokenRef:
    """Where a key store's keys live: a data dir's SoftHSM2 config, a token label, its user PIN."""

    def __init__(self, data_dir: Path | str, label: str, pin: str) -> None:
        self.conf = conf_path(data_dir)
        self.label = label
        self.pin = pin
