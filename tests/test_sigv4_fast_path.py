"""The SigV4 fast path (POST /, cached signing key) computes exactly botocore's signature."""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

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
