"""Asymmetric and HMAC key material: what each AWS KMS key spec is, and its cryptography.

One table says, for every key spec AWS KMS has, which key usages CreateKey accepts and which
algorithms a key of that spec and usage lists (KeyMetadata, GetPublicKey). The functions
below make, load and use the material; they know nothing of requests, so KMS keys
(``ops.asymmetric``, ``ops.shared_secrets``) and data key pairs (``ops.data_key_pairs``)
share them.

Material formats: a private key is stored as PKCS#8 DER (RFC 5958); ML-DSA and ML-KEM
private keys in their 32/64-byte *seed* form, as AWS KMS returns ML-KEM data key pairs. A
public key is an X.509 SubjectPublicKeyInfo (RFC 5280), with the OIDs of RFC 8410
(Ed25519), RFC 9881 (ML-DSA) and RFC 9935 (ML-KEM). An HMAC key's material is its raw
secret.

Libraries: ``cryptography`` does RSA, ECDSA, ECDH, Ed25519, ML-DSA-44/65/87 and
ML-KEM-768/1024. It has neither Ed25519ph (RFC 8032 HashEdDSA, AWS's ED25519_PH_SHA_512)
nor ML-KEM-512; those two come from PyCryptodome, whose ML-KEM is the PQ Code Package's
mlkem-native. :func:`load_private_key` is the one place private keys are parsed;
:class:`ParsedKeys` keeps what it parsed (RSA's key validation costs ~0.6 s for a 4096-bit key).

Cost: RSA private-key operations and key generation, and ML-DSA signing, take milliseconds
(:func:`is_heavy`), so the backend runs them off the server's event loop
(:meth:`kms_iac.backend.core.Call.compute`); ``cryptography`` releases the GIL inside them.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa, utils

SYMMETRIC = "SYMMETRIC_DEFAULT"
CHINA_REGIONS = frozenset({"cn-north-1", "cn-northwest-1"})

RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1, "ECC_SECG_P256K1": ec.SECP256K1,
}
NIST_CURVES = ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")
ED25519 = "ECC_NIST_EDWARDS25519"
ML_DSA: dict[str, Any] = {
    "ML_DSA_44": mldsa.MLDSA44PrivateKey, "ML_DSA_65": mldsa.MLDSA65PrivateKey, "ML_DSA_87": mldsa.MLDSA87PrivateKey,
}
# ML-KEM: (cryptography's private key class or None where it has none, FIPS 203 ciphertext length)
ML_KEM: dict[str, tuple[Any, int]] = {
    "ML_KEM_512": (None, 768), "ML_KEM_768": (mlkem.MLKEM768PrivateKey, 1088),
    "ML_KEM_1024": (mlkem.MLKEM1024PrivateKey, 1568),
}
HMAC_BYTES = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}
SM2 = "SM2"

RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
RSA_SIGNING = (
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
)
EC_SIGNING = {"ECC_NIST_P256": "ECDSA_SHA_256", "ECC_NIST_P384": "ECDSA_SHA_384",
              "ECC_NIST_P521": "ECDSA_SHA_512", "ECC_SECG_P256K1": "ECDSA_SHA_256"}
ED25519_SIGNING = ("ED25519_SHA_512", "ED25519_PH_SHA_512")
ML_DSA_SIGNING = "ML_DSA_SHAKE_256"
HASHES = {"SHA_1": hashes.SHA1, "SHA_224": hashes.SHA224, "SHA_256": hashes.SHA256,
          "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}
ML_DSA_MU_BYTES = 64
SHARED_SECRET_BYTES = 32  # ML-KEM's K (FIPS 203)

# CreateKey's KeyUsage values per key spec (CreateKey API reference, KeyUsage and KeySpec):
# NIST curves sign or agree keys, secp256k1 and Ed25519 only sign, ML-KEM only encapsulates.
USAGES: dict[str, tuple[str, ...]] = {
    **{s: ("ENCRYPT_DECRYPT", "SIGN_VERIFY") for s in RSA_BITS},
    **{s: ("SIGN_VERIFY", "KEY_AGREEMENT") for s in NIST_CURVES},
    "ECC_SECG_P256K1": ("SIGN_VERIFY",),
    ED25519: ("SIGN_VERIFY",),
    **{s: ("SIGN_VERIFY",) for s in ML_DSA},
    **{s: ("ENCAPSULATE_DECAPSULATE",) for s in ML_KEM},
    **{s: ("GENERATE_VERIFY_MAC",) for s in HMAC_BYTES},
    SM2: ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "KEY_AGREEMENT"),
}
# GenerateDataKeyPair's KeyPairSpec values (botocore's DataKeyPairSpec) this backend makes.
DATA_KEY_PAIR_SPECS = (*RSA_BITS, *EC_CURVES, ED25519, *ML_KEM)


def region_refusal(spec: str, region: str) -> str | None:
    """Why ``spec`` does not exist in ``region`` (None when it does): SM2 only in the China
    Regions, ML-KEM everywhere else (CreateKey and GenerateDataKeyPair API references)."""
    china = region in CHINA_REGIONS
    if (spec == SM2 and not china) or (spec in ML_KEM and china):
        return "is not supported in this Region"
    return None


def algorithm_fields(spec: str, usage: str) -> dict[str, list[str]]:
    """The ``*Algorithms`` members of KeyMetadata and GetPublicKey for a non-symmetric key."""
    if spec in HMAC_BYTES:
        return {"MacAlgorithms": [f"HMAC_SHA_{spec[5:]}"]}
    if usage == "ENCRYPT_DECRYPT":
        return {"EncryptionAlgorithms": list(RSA_ENCRYPTION)}
    if usage == "KEY_AGREEMENT":
        return {"KeyAgreementAlgorithms": ["ECDH"]}
    if usage == "ENCAPSULATE_DECAPSULATE":
        return {"EncapsulationAlgorithms": ["ML_KEM"]}
    return {"SigningAlgorithms": list(signing_algorithms(spec))}


def signing_algorithms(spec: str) -> tuple[str, ...]:
    if spec in RSA_BITS:
        return RSA_SIGNING
    if spec in EC_SIGNING:
        return (EC_SIGNING[spec],)
    if spec == ED25519:
        return ED25519_SIGNING
    if spec in ML_DSA:
        return (ML_DSA_SIGNING,)
    return ()


def hash_of(algorithm: str) -> hashes.HashAlgorithm:
    """The hash an algorithm name ends in (``..._SHA_256`` -> SHA-256)."""
    return HASHES[algorithm[algorithm.index("SHA_"):]]()


# -- material -----------------------------------------------------------------------------


def _pkcs8(private: Any) -> bytes:
    return private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def generate_material(spec: str) -> bytes:
    """A fresh private key (PKCS#8 DER) or HMAC secret for ``spec``."""
    if spec in HMAC_BYTES:
        return os.urandom(HMAC_BYTES[spec])
    if spec in RSA_BITS:
        return _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[spec]))
    if spec in EC_CURVES:
        return _pkcs8(ec.generate_private_key(EC_CURVES[spec]()))
    if spec == ED25519:
        return _pkcs8(ed25519.Ed25519PrivateKey.generate())
    if spec in ML_DSA:
        return _pkcs8(ML_DSA[spec].generate())
    if spec in ML_KEM:
        cls = ML_KEM[spec][0]
        return _pkcs8(cls.generate()) if cls is not None else _MLKEM512Private.generate().pkcs8()
    raise ValueError(f"no key material for key spec {spec}")


def load_private_key(spec: str, der: bytes, *, trusted: bool = False) -> Any:
    """Parse a stored private key (the only place this is done: see the module docstring).

    ``trusted``: the material was generated by this backend (:func:`generate_material`) and has
    only ever been stored wrapped under the root key (AES-GCM: any change is detected), so RSA's
    key validation (``cryptography``'s primality and consistency checks: ~77 ms for RSA_2048,
    ~0.6 s for RSA_4096) is skipped. Imported material is always validated.

    Returns a ``cryptography`` private key, or for ML-KEM-512 an object with the same
    ``decapsulate``/``public_key`` interface."""
    if spec == "ML_KEM_512":
        return _MLKEM512Private.from_pkcs8(der)
    return serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=trusted)


class ParsedKeys:
    """Parsed private keys of KMS keys, beside the backend's material cache.

    An entry is (key id, region, material version) -> (the DER it was parsed from, the parsed
    key), and is used only while the material still is that DER, so a cache dropped and refilled
    by the store (another process wrote) keeps its parsed keys without trusting stale ones.
    Bounded (least recently used out); :meth:`forget` drops a key's entries with its material.
    Callers hold the store lock (the dispatcher does), so no lock of its own.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str, int], tuple[bytes, Any]] = OrderedDict()

    def get(self, ident: tuple[str, str, int], spec: str, der: bytes, trusted: bool) -> Any:
        hit = self._entries.get(ident)
        if hit is not None and hit[0] == der:
            self._entries.move_to_end(ident)
            return hit[1]
        parsed = load_private_key(spec, der, trusted=trusted)
        self._entries[ident] = (der, parsed)
        self._entries.move_to_end(ident)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return parsed

    def forget(self, key_id: str, region: str) -> None:
        for ident in [i for i in self._entries if i[0] == key_id and i[1] == region]:
            del self._entries[ident]

    def __len__(self) -> int:
        return len(self._entries)


def is_heavy(spec: str, operation: str = "private") -> bool:
    """Whether ``operation`` on a key of ``spec`` costs milliseconds: "private" (sign, decrypt),
    "generate", or "verify". RSA's private operations and key generation do, and all of ML-DSA's
    (on a loaded 2-core machine: RSA_2048 sign ~1 ms, RSA_4096 ~5-12 ms, RSA_2048 key generation
    ~80 ms, ML-DSA-87 sign ~2 ms); ECC, Ed25519, ML-KEM and HMAC take microseconds."""
    if spec in RSA_BITS:
        return operation != "verify"
    return spec in ML_DSA


def public_key_der(private: Any) -> bytes:
    """The DER SubjectPublicKeyInfo of a private key's public half."""
    return private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


# -- signatures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningInput:
    """A checked Sign/Verify request: the algorithm and how to read the message."""

    algorithm: str
    message: bytes
    message_type: str  # RAW, DIGEST or EXTERNAL_MU


def _rsa_ecdsa_scheme(algorithm: str, digest: bool) -> tuple[Any, Any]:
    """(padding or signature algorithm, hash argument) for cryptography's sign/verify."""
    h = hash_of(algorithm)
    chosen = utils.Prehashed(h) if digest else h
    if algorithm.startswith("ECDSA"):
        return ec.ECDSA(chosen), None
    if algorithm.startswith("RSASSA_PSS"):
        return padding.PSS(mgf=padding.MGF1(hash_of(algorithm)), salt_length=h.digest_size), chosen
    return padding.PKCS1v15(), chosen


def sign(spec: str, private: Any, req: SigningInput) -> bytes:
    """Sign as AWS KMS does for ``spec`` (the request was checked by the caller)."""
    if spec in ML_DSA:  # FIPS 204 ML-DSA.Sign, empty context; EXTERNAL_MU skips computing mu
        return private.sign_mu(req.message) if req.message_type == "EXTERNAL_MU" else private.sign(req.message)
    if spec == ED25519:
        if req.algorithm == "ED25519_PH_SHA_512":  # KMS prehashes the 64-byte message again (Sign API reference)
            return _ed25519ph(private, req.message)
        return private.sign(req.message)
    first, second = _rsa_ecdsa_scheme(req.algorithm, req.message_type == "DIGEST")
    return private.sign(req.message, first) if second is None else private.sign(req.message, first, second)


def verify(spec: str, public: Any, req: SigningInput, signature: bytes) -> bool:
    """Whether ``signature`` is valid for the request under ``public``."""
    try:
        if spec in ML_DSA:
            if req.message_type == "EXTERNAL_MU":
                public.verify_mu(signature, req.message)
            else:
                public.verify(signature, req.message)
        elif spec == ED25519 and req.algorithm == "ED25519_PH_SHA_512":
            return _ed25519ph_verify(public, req.message, signature)
        elif spec == ED25519:
            public.verify(signature, req.message)
        else:
            first, second = _rsa_ecdsa_scheme(req.algorithm, req.message_type == "DIGEST")
            if second is None:
                public.verify(signature, req.message, first)
            else:
                public.verify(signature, req.message, first, second)
    except (InvalidSignature, ValueError):
        return False
    return True


def _pycryptodome_ed25519(key: Any) -> Any:
    """The same Ed25519 key as a PyCryptodome key (private from its seed, public from its SPKI)."""
    from Crypto.PublicKey import ECC

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return ECC.construct(curve="Ed25519", seed=key.private_bytes_raw())
    return ECC.import_key(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _ed25519ph(private: ed25519.Ed25519PrivateKey, message: bytes) -> bytes:
    """RFC 8032 Ed25519ph (empty context) over ``message``: PH(M) = SHA-512(M)."""
    from Crypto.Hash import SHA512
    from Crypto.Signature import eddsa

    return eddsa.new(_pycryptodome_ed25519(private), "rfc8032").sign(SHA512.new(message))


def _ed25519ph_verify(public: ed25519.Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    from Crypto.Hash import SHA512
    from Crypto.Signature import eddsa

    try:
        eddsa.new(_pycryptodome_ed25519(public), "rfc8032").verify(SHA512.new(message), signature)
    except ValueError:
        return False
    return True


# -- key agreement and key encapsulation ------------------------------------------------------


def ecdh(private: ec.EllipticCurvePrivateKey, peer_public_der: bytes) -> bytes:
    """The raw ECDH shared secret (the x-coordinate, SP 800-56A's Z) with a peer's SPKI.

    ValueError when the peer key is not an SPKI EC public key on the same curve."""
    peer = serialization.load_der_public_key(peer_public_der)
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != private.curve.name:
        raise ValueError("the public key is not on the KMS key's curve")
    return private.exchange(ec.ECDH(), peer)


def encapsulate(private: Any) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext) encapsulated to an ML-KEM key's public half."""
    return private.public_key().encapsulate()


def decapsulate(spec: str, private: Any, ciphertext: bytes) -> bytes:
    """The shared secret in ``ciphertext`` (FIPS 203 implicit rejection: a wrong ciphertext of
    the right length gives a pseudo-random secret). ValueError for a wrong length."""
    if len(ciphertext) != ML_KEM[spec][1]:
        raise ValueError("ciphertext length does not match the key spec")
    return private.decapsulate(ciphertext)


class _MLKEM512Public:
    """An ML-KEM-512 public key with ``cryptography``'s ML-KEM public key interface."""

    def __init__(self, key: Any) -> None:
        self._key = key

    def encapsulate(self) -> tuple[bytes, bytes]:
        # PyCryptodome keeps encapsulation off its public API (its HPKE and hybrid KEMs call
        # this method); FIPS 203 ML-KEM.Encaps with fresh 32-byte randomness m.
        return self._key._encaps()

    def public_bytes(self, encoding: serialization.Encoding, fmt: serialization.PublicFormat) -> bytes:
        if encoding != serialization.Encoding.DER or fmt != serialization.PublicFormat.SubjectPublicKeyInfo:
            raise ValueError("ML-KEM-512 public keys are exported as DER SubjectPublicKeyInfo only")
        return self._key.export_key(format="DER")


class _MLKEM512Private:
    """An ML-KEM-512 private key (PyCryptodome) with ``cryptography``'s ML-KEM interface."""

    def __init__(self, key: Any) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> "_MLKEM512Private":
        from Crypto.PublicKey import MLKEM

        return cls(MLKEM.generate(param_set=MLKEM.ML_KEM_512))

    @classmethod
    def from_pkcs8(cls, der: bytes) -> "_MLKEM512Private":
        from Crypto.PublicKey import MLKEM

        return cls(MLKEM.import_key(der))

    def pkcs8(self) -> bytes:
        """PKCS#8 with the 64-byte seed (RFC 9935's ``seed`` choice), like cryptography's."""
        return self._key.export_key(format="DER")

    def public_key(self) -> _MLKEM512Public:
        return _MLKEM512Public(self._key.public_key())

    def decapsulate(self, ciphertext: bytes) -> bytes:
        return self._key._decaps(ciphertext)
