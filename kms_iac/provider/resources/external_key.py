"""``kms-iac:index:ExternalKey``: a KMS key with imported (BYOK) key material.

``keySpec``/``keyUsage`` (as pulumi-aws's ``aws.kms.ExternalKey`` spells them) say what the
material is: 32 bytes for SYMMETRIC_DEFAULT, an HMAC secret for HMAC_*, a PKCS#8 DER private
key for RSA_*, ECC_* and ECC_NIST_EDWARDS25519 keys; ``keyMaterial`` is its base64. Check
refuses, at preview, a spec/usage pair KMS refuses, a spec whose material cannot be imported
(ML-DSA, ML-KEM) and, when the material is known, material that is not of the spec (the
backend's own import checks, called without a backend).

The material is a secret input: it is wrapped client-side with the RSA public key KMS hands
out and never sent in the clear. RSAES_OAEP_SHA_256 under an RSA_2048 wrapping key when the
material fits one OAEP block and KMS allows it for the spec; otherwise RSA_AES_KEY_WRAP_SHA_256
under RSA_4096 (required for RSA private keys and for ECC_NIST_P521 under RSA_2048): a fresh
AES-256 key wraps the material (RFC 5649, AES key wrap with padding) and RSA-OAEP-SHA-256
encrypts that AES key; KMS takes the two concatenated. A different material replaces the key
(KMS accepts only the same material again); a new ``validTo`` re-imports the same material in
place. Imported material is never rotated automatically.
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import datetime, timezone
from types import SimpleNamespace

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from kms_iac.backend.errors import KMSError
from kms_iac.backend.ops.imports import _check_wrapping, _checked_material, importable
from kms_iac.provider.resources.base import NotAdoptable, ProviderError, fail, kms_call, tag_list
from kms_iac.provider.resources.key import (
    BYPASS,
    DESCRIPTION,
    ENABLED,
    KEY_OUTPUTS,
    MULTI_REGION,
    POLICY,
    TAGS,
    USAGES_BY_SPEC,
    WINDOW,
    KeyHandler,
    _mismatch,
)
from kms_iac.provider.spec import Prop, ResourceSpec

SYMMETRIC = "SYMMETRIC_DEFAULT"
# The key specs whose material can be imported: the backend's rule over the spec/usage table.
IMPORTABLE_SPECS: tuple[str, ...] = tuple(s for s in USAGES_BY_SPEC if importable(s))

SPEC = ResourceSpec(
    "ExternalKey",
    "A KMS key whose key material you import (bring your own key): symmetric, HMAC or asymmetric.",
    (
        Prop("keyMaterial", "string", "Base64 of the key material: 32 bytes (SYMMETRIC_DEFAULT), the HMAC secret "
             "(HMAC_*), or a PKCS#8 DER private key (RSA_*, ECC_*, ECC_NIST_EDWARDS25519).",
             replaces=True, secret=True, required=True),
        Prop("keySpec", "string", f"Key spec of the material ({', '.join(IMPORTABLE_SPECS)}).", replaces=True,
             default=SYMMETRIC),
        Prop("keyUsage", "string", "ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC or KEY_AGREEMENT.", replaces=True,
             default="ENCRYPT_DECRYPT"),
        Prop("validTo", "string", "RFC 3339 time at which KMS deletes the material; never when omitted.",
             ignore_when_absent=True),
        DESCRIPTION,
        POLICY,
        WINDOW,
        ENABLED,
        MULTI_REGION,
        BYPASS,
        TAGS,
        *KEY_OUTPUTS,
        Prop("expirationModel", "string", "KEY_MATERIAL_EXPIRES or KEY_MATERIAL_DOES_NOT_EXPIRE.", output=True),
    ),
)
# Wrapping choices, cheapest first: one RSA-OAEP block under RSA_2048, else RSA + AES key wrap.
OAEP, RSA_AES = ("RSAES_OAEP_SHA_256", "RSA_2048"), ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")
_SHA256 = hashes.SHA256()
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_WRAPPING_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}


def _decoded(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("keyMaterial must be base64") from None


def _material(value: str, spec: str = SYMMETRIC) -> bytes:
    """The material's bytes if they can be imported into a key of ``spec`` (the backend's
    ImportKeyMaterial checks: 256 bits, HMAC length bounds, a PKCS#8 private key of the
    spec's size or curve); ValueError with the reason otherwise."""
    raw = _decoded(value)
    try:
        _checked_material(spec, raw)
    except KMSError as exc:
        raise ValueError(f"keyMaterial does not fit keySpec {spec}: {exc.message}") from None
    return raw


def _valid_to(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"validTo {value!r} is not an RFC 3339 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def wrapping_for(spec: str, material: bytes) -> tuple[str, str]:
    """(WrappingAlgorithm, WrappingKeySpec) for importing ``material`` into a ``spec`` key.

    RSAES_OAEP_SHA_256 under RSA_2048 when the material fits one OAEP block (at most 190
    bytes: the modulus less two hashes and two bytes, RFC 8017) and KMS allows it for the
    spec (the backend's copy of AWS's wrapping rules decides); RSA_AES_KEY_WRAP_SHA_256 under
    RSA_4096 otherwise."""
    algorithm, wrapping_spec = OAEP
    fits = len(material) <= _WRAPPING_BITS[wrapping_spec] // 8 - 2 * _SHA256.digest_size - 2
    if fits:
        try:
            _check_wrapping(SimpleNamespace(key_spec=spec), algorithm, wrapping_spec)  # type: ignore[arg-type]
            return OAEP
        except KMSError:
            pass
    return RSA_AES


def wrap(algorithm: str, public_key_der: bytes, material: bytes) -> bytes:
    """``material`` encrypted as ImportKeyMaterial takes it under the wrapping public key.

    RSA_AES_KEY_WRAP_SHA_256 (AWS developer guide, "Encrypt key material"): RSA-OAEP-SHA-256
    of a fresh 256-bit AES key, followed by the material wrapped with that key (AES key wrap
    with padding, RFC 5649)."""
    public = serialization.load_der_public_key(public_key_der)
    if algorithm == "RSAES_OAEP_SHA_256":
        return public.encrypt(material, _OAEP)  # type: ignore[union-attr]
    if algorithm == "RSA_AES_KEY_WRAP_SHA_256":
        aes_key = os.urandom(32)
        return public.encrypt(aes_key, _OAEP) + aes_key_wrap_with_padding(aes_key, material)  # type: ignore[union-attr]
    raise ValueError(f"no wrapping with {algorithm}")


class ExternalKeyHandler(KeyHandler):
    spec = SPEC

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        spec = inputs.get("keySpec", SYMMETRIC)
        importable_spec = not isinstance(spec, str) or spec in IMPORTABLE_SPECS  # unknown at preview: later
        # The Key's checks (spec/usage pair, policy, tags, window) for an importable spec; a spec
        # that cannot be imported is the one thing to say about spec and usage.
        skipped = ("keyMaterial", "validTo") if importable_spec else ("keyMaterial", "validTo", "keySpec", "keyUsage")
        fails = super().validate({k: v for k, v in inputs.items() if k not in skipped})
        if not importable_spec:
            fails.append(("keySpec", (f"key material cannot be imported into {spec} keys; " if spec in USAGES_BY_SPEC
                                      else f"unknown keySpec {spec}; ") +
                          f"keySpec must be one of {', '.join(IMPORTABLE_SPECS)}"))
        material = inputs.get("keyMaterial")
        if isinstance(material, str):
            try:
                if isinstance(spec, str) and spec in IMPORTABLE_SPECS:
                    _material(material, spec)
                else:  # the spec is unknown (preview) or refused above: only the encoding can be checked
                    _decoded(material)
            except ValueError as exc:
                # No property name: the engine would print the property's value beside it, and a
                # material given as a plain string (not a secret Output) is only masked once
                # Check has marked it secret. The reason names keyMaterial itself.
                fails.append(("", str(exc)))
        if isinstance(inputs.get("validTo"), str):
            try:
                _valid_to(inputs["validTo"])
            except ValueError as exc:
                fails.append(("validTo", str(exc)))
        return fails

    @staticmethod
    def _declared_material(name: str, inputs: dict) -> bytes:
        """The material to import, checked against the key spec (Check did so unless it was unknown then)."""
        try:
            return _material(inputs["keyMaterial"], inputs.get("keySpec", SYMMETRIC))
        except ValueError as exc:
            raise fail(name, "import", str(exc)) from None

    def _import(self, kms, name: str, key_id: str, inputs: dict) -> None:
        material = self._declared_material(name, inputs)
        algorithm, wrapping_spec = wrapping_for(inputs.get("keySpec", SYMMETRIC), material)
        params = kms_call(name, "GetParametersForImport", kms.get_parameters_for_import, KeyId=key_id,
                          WrappingAlgorithm=algorithm, WrappingKeySpec=wrapping_spec)
        args: dict = {"KeyId": key_id, "ImportToken": params["ImportToken"],
                      "EncryptedKeyMaterial": wrap(algorithm, params["PublicKey"], material)}
        if inputs.get("validTo"):
            args.update(ValidTo=_valid_to(inputs["validTo"]), ExpirationModel="KEY_MATERIAL_EXPIRES")
        else:
            args["ExpirationModel"] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
        kms_call(name, "ImportKeyMaterial", kms.import_key_material, **args)

    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        adopted = self.adopt_orphan(kms, name, urn, inputs)
        if adopted is not None:
            return adopted
        self._declared_material(name, inputs)  # before a key exists that would wait for it
        params: dict = {"Origin": "EXTERNAL", "Description": inputs.get("description", ""),
                        "KeySpec": inputs.get("keySpec", SYMMETRIC), "KeyUsage": inputs.get("keyUsage", "ENCRYPT_DECRYPT"),
                        "MultiRegion": bool(inputs.get("multiRegion")), "Tags": tag_list(inputs.get("tags"), urn)}
        if inputs.get("policy"):
            params["Policy"] = inputs["policy"]
        if inputs.get("bypassPolicyLockoutSafetyCheck"):
            params["BypassPolicyLockoutSafetyCheck"] = True
        key_id = kms_call(name, "CreateKey", kms.create_key, **params)["KeyMetadata"]["KeyId"]
        try:
            self._import(kms, name, key_id, inputs)
            if inputs.get("isEnabled") is False:
                kms_call(name, "DisableKey", kms.disable_key, KeyId=key_id)
        except Exception:
            self.delete(kms, name, key_id, inputs)  # never leave a key without material behind
            raise
        state = self.read_back(kms, name, key_id, inputs)
        return key_id, state

    def adoption_mismatch(self, md: dict, inputs: dict) -> str | None:
        return _mismatch(md, {"KeySpec": inputs.get("keySpec", SYMMETRIC), "KeyUsage": inputs.get("keyUsage", "ENCRYPT_DECRYPT"),
                              "Origin": "EXTERNAL", "MultiRegion": bool(inputs.get("multiRegion"))})

    def adopt(self, kms, name: str, md: dict, inputs: dict) -> tuple[str, dict]:
        """Import the declared material first: KMS accepts only the material the key was first
        given, so a key still waiting for its material, or holding this one, is adoptable."""
        try:
            self._import(kms, name, md["KeyId"], inputs)
        except ProviderError as exc:
            if exc.code == "IncorrectKeyMaterialException":
                raise NotAdoptable("it holds other key material") from None
            raise
        return super().adopt(kms, name, md, inputs)

    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        base = super().read(kms, name, resource_id, state)
        if base is None:
            return None
        md = kms.describe_key(KeyId=resource_id)["KeyMetadata"]
        out = {k: v for k, v in base.items() if k in {p.name for p in SPEC.props}}
        if state.get("keyMaterial") is not None:
            out["keyMaterial"] = state["keyMaterial"]
        valid_to = md.get("ValidTo")
        if valid_to is not None:
            given = state.get("validTo")
            same = isinstance(given, str) and abs(_valid_to(given).timestamp() - valid_to.timestamp()) < 1
            out["validTo"] = given if same else valid_to.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        out["expirationModel"] = md.get("ExpirationModel", "")
        out["isEnabled"] = md["KeyState"] == "Enabled"
        return out

    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict:
        if "validTo" in changes:
            self._import(kms, name, resource_id, news)  # the same material, a new expiration
        return super().update(kms, name, resource_id, olds, news, [c for c in changes if c != "validTo"])
