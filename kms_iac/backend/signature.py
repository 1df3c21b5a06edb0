"""Reading the caller's identity off a SigV4 ``Authorization`` header.

Without a principals file any well-formed SigV4 request is accepted as the default
account's root, in the region it was signed for (its credential scope), which is how a
boto3 client's ``region_name`` reaches the backend.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping

from kms_iac.backend.context import RequestContext
from kms_iac.backend.errors import IncompleteSignature, InvalidSignatureException, MissingAuthenticationTokenException

REGION_RE = re.compile(r"^[a-z0-9-]{1,32}$")
_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
# The refusals that mean the caller was never established (AWS's names for them).
AUTHENTICATION_ERRORS = frozenset({
    "MissingAuthenticationTokenException", "IncompleteSignature", "InvalidSignatureException",
    "UnrecognizedClientException",
})
_PRESENTED_RE = re.compile(r"Credential=([^/,\s]{1,128})(?:/[^/,\s]*/([^/,\s]*))?")


def signing_identity(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """(access key id, region, service) from a SigV4 Authorization header; typed errors otherwise."""
    auth = headers.get("authorization")
    if not auth:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise IncompleteSignature(f"Authorization header requires 'Credential' parameter. Authorization={auth[:64]}")
    found = _credential(auth)
    if found is None or "SignedHeaders=" not in auth or "Signature=" not in auth:
        raise IncompleteSignature(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters."
        )
    access_key, region, service = found
    if not _valid_region(region):
        raise InvalidSignatureException(f"Credential should be scoped to a valid region, not '{region}'. ")
    return access_key, region, service


def _credential(auth: str) -> tuple[str, str, str] | None:
    """(access key id, region, service) as ``_CREDENTIAL_RE`` finds them.

    The usual header (``Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request,`` as SDKs write it)
    is read with string operations, which agree with the pattern wherever they accept; anything
    else is left to the pattern itself."""
    start = auth.find("Credential=")
    if start != -1:
        end = auth.find(",", start)
        found = _scope(auth[start + 11:end if end != -1 else len(auth)])
        if found is not None:
            return found
    m = _CREDENTIAL_RE.search(auth)
    return None if m is None else (m.group(1), m.group(3), m.group(4))


@lru_cache(maxsize=1024)  # a client's scope is the same all day: read once
def _scope(scope: str) -> tuple[str, str, str] | None:
    parts = scope.split("/")
    if (len(parts) == 5 and parts[4] == "aws4_request" and len(parts[1]) == 8 and parts[1].isascii()
            and parts[1].isdigit() and parts[0] and parts[2] and parts[3]
            and scope.isprintable() and " " not in scope):  # no whitespace: what [^/,\s] also excludes
        return parts[0], parts[2], parts[3]
    return None


@lru_cache(maxsize=256)
def _valid_region(region: str) -> bool:
    return REGION_RE.match(region) is not None


def context_from_signature(ctx: RequestContext, headers: Mapping[str, str]) -> RequestContext:
    """Without a principals file: any well-formed SigV4 request is the default account's root,
    in the region it was signed for."""
    access_key, region, _service = signing_identity(headers)
    ctx.access_key_id = access_key
    ctx.region = region
    return ctx


def unauthenticated(ctx: RequestContext, headers: Mapping[str, str]) -> RequestContext:
    """The context of a request refused before its caller was established (no or a bad signature,
    an unknown access key): CloudTrail's ``Unknown`` identity with the access key id and region the
    request *presented*, read leniently. Never the account root: nothing was proven."""
    m = _PRESENTED_RE.search(headers.get("authorization") or "")
    ctx.principal_type = "Unknown"
    ctx.principal_arn = ""
    ctx.access_key_id = m.group(1) if m else None
    if m and m.group(2) and REGION_RE.match(m.group(2)):
        ctx.region = m.group(2)
    ctx.identity_policies = ()
    return ctx
