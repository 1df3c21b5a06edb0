"""``SigningKey`` and ``HmacKey``: asymmetric signing and HMAC keys with the matching roles."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pulumi

from ._inputs import ComponentInputError, string_list
from .tenant_key import TenantKey
from kms_iac.backend.keypairs import HMAC_BYTES, SM2, USAGES

# The key specs that sign (RSA, ECDSA curves, Ed25519, ML-DSA-44/65/87), from the backend's
# spec/usage table; SM2 exists only in the China Regions, so a component does not offer it.
SIGNING_SPECS = tuple(spec for spec, usages in USAGES.items() if "SIGN_VERIFY" in usages and spec != SM2)
HMAC_SPECS = tuple(HMAC_BYTES)


class SigningKey(TenantKey):
    """An asymmetric SIGN_VERIFY key (RSA, ECDSA, Ed25519 or ML-DSA; see SIGNING_SPECS):
    signers may Sign and Verify, verifiers only Verify (and read the public key);
    administrators manage it; no automatic rotation (KMS does not rotate asymmetric keys)."""

    def __init__(self, name: str, *, tenant: str, key_spec: str = "ECC_NIST_P256",
                 signers: Sequence[pulumi.Input[str]] = (), verifiers: Sequence[pulumi.Input[str]] = (),
                 opts: Optional[pulumi.ResourceOptions] = None, **kwargs: Any) -> None:
        if key_spec not in SIGNING_SPECS:
            raise ComponentInputError(f"SigningKey(tenant={tenant!r}).key_spec: {key_spec!r} cannot sign; "
                                      f"use one of {', '.join(SIGNING_SPECS)}")
        self._spec = key_spec
        self._roles = {"key_signers": string_list(signers, f"SigningKey(tenant={tenant!r}).signers"),
                       "key_verifiers": string_list(verifiers, f"SigningKey(tenant={tenant!r}).verifiers")}
        kwargs.setdefault("alias_prefix", "signing")
        super().__init__(name, tenant=tenant, opts=opts, _type="kms-iac:index:SigningKey", **kwargs)

    def _extra_roles(self) -> dict[str, Any]:
        return self._roles

    def _key_usage(self) -> tuple[Optional[str], Optional[str]]:
        return self._spec, "SIGN_VERIFY"


class HmacKey(TenantKey):
    """An HMAC key (GENERATE_VERIFY_MAC): MAC users may GenerateMac and VerifyMac."""

    def __init__(self, name: str, *, tenant: str, key_spec: str = "HMAC_256",
                 mac_users: Sequence[pulumi.Input[str]] = (), opts: Optional[pulumi.ResourceOptions] = None,
                 **kwargs: Any) -> None:
        if key_spec not in HMAC_SPECS:
            raise ComponentInputError(f"HmacKey(tenant={tenant!r}).key_spec: {key_spec!r} is not an HMAC key spec; "
                                      f"use one of {', '.join(HMAC_SPECS)}")
        self._spec = key_spec
        self._roles = {"key_mac_users": string_list(mac_users, f"HmacKey(tenant={tenant!r}).mac_users")}
        kwargs.setdefault("alias_prefix", "hmac")
        super().__init__(name, tenant=tenant, opts=opts, _type="kms-iac:index:HmacKey", **kwargs)

    def _extra_roles(self) -> dict[str, Any]:
        return self._roles

    def _key_usage(self) -> tuple[Optional[str], Optional[str]]:
        return self._spec, "GENERATE_VERIFY_MAC"
