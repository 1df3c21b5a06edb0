"""``kms-iac:index:ExternalKey``: a KMS key with imported (BYOK) key material.

The material (``keyMaterial``, base64 of 32 bytes) is a secret input: it is wrapped
client-side with the RSA public key KMS hands out (RSAES_OAEP_SHA_256) and never sent
in the clear. A different material replaces the key (KMS accepts only the same
material again); a new ``validTo`` re-imports the same material in place. Imported
material is never rotated automatically.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from kms_iac.provider.resources.base import NotAdoptable, ProviderError, kms_call, tag_list
from kms_iac.provider.resources.key import (
    BYPASS,
    DESCRIPTION,
    ENABLED,
    KEY_OUTPUTS,
    MULTI_REGION,
    POLICY,
    TAGS,
    WINDOW,
    KeyHandler,
    _mismatch,
)
from kms_iac.provider.spec import Prop, ResourceSpec

SPEC = ResourceSpec(
    "ExternalKey",
    "A symmetric KMS key whose key material you import (bring your own key).",
    (
        Prop("keyMaterial", "string", "Base64 of the 256-bit key material.", replaces=True, secret=True, required=True),
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
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _material(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("keyMaterial must be base64") from None
    if len(raw) != 32:
        raise ValueError(f"keyMaterial must be 32 bytes (256 bits), got {len(raw)}")
    return raw


def _valid_to(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"validTo {value!r} is not an RFC 3339 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class ExternalKeyHandler(KeyHandler):
    spec = SPEC

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        fails = super().validate({k: v for k, v in inputs.items() if k not in ("keyMaterial", "validTo")})
        for prop, check in (("keyMaterial", _material), ("validTo", _valid_to)):
            if isinstance(inputs.get(prop), str):
                try:
                    check(inputs[prop])
                except ValueError as exc:
                    fails.append((prop, str(exc)))
        return fails

    def _import(self, kms, name: str, key_id: str, inputs: dict) -> None:
        params = kms_call(name, "GetParametersForImport", kms.get_parameters_for_import, KeyId=key_id,
                          WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
        public = serialization.load_der_public_key(params["PublicKey"])
        args: dict = {"KeyId": key_id, "ImportToken": params["ImportToken"],
                      "EncryptedKeyMaterial": public.encrypt(_material(inputs["keyMaterial"]), _OAEP)}  # type: ignore[union-attr]
        if inputs.get("validTo"):
            args.update(ValidTo=_valid_to(inputs["validTo"]), ExpirationModel="KEY_MATERIAL_EXPIRES")
        else:
            args["ExpirationModel"] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
        kms_call(name, "ImportKeyMaterial", kms.import_key_material, **args)

    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        adopted = self.adopt_orphan(kms, name, urn, inputs)
        if adopted is not None:
            return adopted
        params: dict = {"Origin": "EXTERNAL", "Description": inputs.get("description", ""),
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
        return _mismatch(md, {"Origin": "EXTERNAL", "MultiRegion": bool(inputs.get("multiRegion"))})

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
