"""The SigV4 fast paths (POST /, cached signing key; in C and in Python) compute exactly botocore's signature."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from kms_iac.backend import sigv4
from kms_iac.backend.sigv4 import botocore_signature, expected_signature, parse_authorization

TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=2000), target=TEXT, extra=TEXT, secret=st.text(min_size=1, max_size=40),
       region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"]))
def test_fast_path_equals_botocore(body, target, extra, secret, region):
    req = AWSRequest("POST", "http://127.0.0.1:4599/", data=body,
                     headers={"X-Amz-Target": f"TrentService.{target}", "Content-Type": "application/x-amz-json-1.1",
                              "X-Extra": f"  {extra}  with   spaces "})
    SigV4Auth(Credentials("AKIDFASTPATH0000001", secret), "kms", region).add_auth(req)
    headers = {k.lower(): v for k, v in req.headers.items()} | {"host": "127.0.0.1:4599"}
    auth = parse_authorization(headers)
    stamp = headers["x-amz-date"]
    assert expected_signature(secret, auth, stamp, headers, "POST", "/", body) == auth.signature
    assert botocore_signature(secret, auth, stamp, headers, "POST", "/", body) == auth.signature


# Header values as the server reads them: any latin-1 text (tabs, controls, NBSP, NEL, which
# Python's str.split() and so SigV4's trimming treat as whitespace), and mostly plain ASCII.
VALUE = st.one_of(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=30),
                  st.text(alphabet=" ab-/:=", max_size=30))
NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12)


@settings(max_examples=400, deadline=None)
@given(values=st.dictionaries(NAME, VALUE, max_size=6), missing=st.lists(NAME, max_size=2), body=st.binary(max_size=300),
       method=st.sampled_from(["POST", "post", "Post"]), secret=st.text(min_size=1, max_size=40),
       stamp=st.sampled_from(["20261202T101010Z", "20250101T000000Z"]))
def test_native_and_python_signatures_equal_botocore(values, missing, body, method, secret, stamp):
    """Where the C build answers, it answers botocore's signature; so does the Python reference, always."""
    headers = {"host": "127.0.0.1:4599", "x-amz-date": stamp, **values}
    signed = sorted({"host", "x-amz-date", *values, *missing})  # a signed header that was not sent counts as ""
    raw = (f"AWS4-HMAC-SHA256 Credential=AKIDNATIVE0000000001/{stamp[:8]}/us-east-1/kms/aws4_request, "
           f"SignedHeaders={';'.join(signed)}, Signature=00")
    auth = parse_authorization({**headers, "authorization": raw})
    reference = botocore_signature(secret, auth, stamp, headers, method, "/", body)
    assert sigv4.python_signature(secret, auth, stamp, headers, method, body) == reference
    assert expected_signature(secret, auth, stamp, headers, method, "/", body) == reference
    if sigv4._native_signature is not None:
        native = sigv4._native_signature(method, auth.signed_headers, headers, body, stamp,
                                         f"{stamp[:8]}/us-east-1/kms/aws4_request",
                                         sigv4._signing_key(secret, stamp[:8], "us-east-1", "kms"))
        plain = all(v.isascii() and v.isprintable() for v in headers.values())
        assert native == (reference if plain else None)


def _can_build_native() -> bool:
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return include.exists() and Path("/usr/include/openssl/sha.h").exists() and shutil.which("gcc") is not None


@pytest.mark.skipif(not _can_build_native(), reason="no C compiler, Python or OpenSSL headers: the Python path serves")
def test_native_signature_is_built_where_it_can_be():
    """Setup builds the C extension where a compiler and the headers are there: a build that
    failed silently would leave every signature to Python."""
    assert sigv4._native_signature is not None
