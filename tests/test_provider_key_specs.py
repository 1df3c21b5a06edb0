"""The provider's Key, ExternalKey and ReplicaKey with every key spec the backend has
(Ed25519, ML-DSA, ML-KEM, KEY_AGREEMENT ECC keys, imported RSA/ECC/Ed25519/HMAC material).

Check is held to the backend: for every spec and usage, Check at preview refuses exactly what
CreateKey refuses. Imports are checked on the material's own cryptography (signatures verified
with the local public key, MACs recomputed with the local secret), and the RSA AES key wrap
against AWS's documented format. The last test drives the real Pulumi engine."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from pulumi.provider.experimental.provider import CheckRequest

from kms_iac.backend.embedded import embedded_client
from kms_iac.backend.keypairs import USAGES
from kms_iac.engine import PulumiProject, pulumi_bin_dir
from kms_iac.provider.props import UNKNOWN, unwrap_map, wrap_map
from kms_iac.provider.provider import KmsIacProvider
from kms_iac.provider.resources.external_key import IMPORTABLE_SPECS, ExternalKeyHandler, wrap, wrapping_for
from kms_iac.provider.resources.key import KeyHandler
from kms_iac.provider.resources.replica_key import ReplicaKeyHandler
from kms_iac.provider.spec import check_types
from tests.test_components_unit import by, mocks, run  # noqa: F401 - mocks is a fixture

ALL_USAGES = ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE")
# Every key spec AWS has outside the China Regions (SM2 is theirs alone).
SPECS = ("SYMMETRIC_DEFAULT", *(s for s in USAGES if s != "SM2"))
BASE = {"description": "d", "deletionWindowInDays": 7, "isEnabled": True, "tags": {}}
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def pkcs8(private) -> bytes:
    return private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def spki(private) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check(handler, inputs: dict) -> list[tuple[str, str]]:
    """What the provider's Check says: the spec's defaults and types, then the handler's rules."""
    typed, failures = check_types(handler.spec, inputs)
    return failures + handler.validate(typed)


def kms_refusal(call) -> str | None:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return None


@pytest.fixture
def kms(tmp_path):
    return embedded_client(tmp_path / "kms-data")


# -- Check agrees with CreateKey ---------------------------------------------------------------

def test_key_check_refuses_exactly_what_create_key_refuses(kms):
    for spec in SPECS:
        for usage in ALL_USAGES:
            fails = check(KeyHandler(), {**BASE, "keySpec": spec, "keyUsage": usage})
            refused = kms_refusal(lambda: kms.create_key(KeySpec=spec, KeyUsage=usage))
            assert bool(fails) == bool(refused), (spec, usage, fails, refused)
            if fails:
                assert fails == [("keyUsage", f"keyUsage {usage} is not valid for keySpec {spec} "
                                              f"(valid: {', '.join(USAGES.get(spec, ('ENCRYPT_DECRYPT',)))})")]
    assert check(KeyHandler(), {**BASE, "keySpec": "ML_KEM_1536"})[0][1].startswith("keySpec must be one of SYMMETRIC_DEFAULT")


def test_external_key_check_refuses_exactly_what_an_import_key_refuses(kms):
    """Origin EXTERNAL: the same pairs, less the specs whose material cannot be imported (ML-DSA, ML-KEM)."""
    assert set(IMPORTABLE_SPECS) == set(SPECS) - {"ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ML_KEM_512", "ML_KEM_768",
                                                  "ML_KEM_1024"}
    for spec in SPECS:
        for usage in ALL_USAGES:
            fails = check(ExternalKeyHandler(), {**BASE, "keySpec": spec, "keyUsage": usage, "keyMaterial": UNKNOWN})
            refused = kms_refusal(lambda: kms.create_key(KeySpec=spec, KeyUsage=usage, Origin="EXTERNAL"))
            assert bool(fails) == bool(refused), (spec, usage, fails, refused)
            if spec not in IMPORTABLE_SPECS:
                assert fails == [("keySpec", f"key material cannot be imported into {spec} keys; keySpec must be one of "
                                             + ", ".join(IMPORTABLE_SPECS))]


def test_key_check_details():
    fails = check(KeyHandler(), {**BASE, "keySpec": "ECC_NIST_EDWARDS25519", "keyUsage": "SIGN_VERIFY",
                                 "enableKeyRotation": True})
    assert fails == [("enableKeyRotation", "automatic rotation is only supported for SYMMETRIC_DEFAULT keys, "
                                           "not ECC_NIST_EDWARDS25519")]
    fails = check(KeyHandler(), {**BASE, "keySpec": "ML_DSA_44", "keyUsage": "SIGN_VERIFY",
                                 "customKeyStoreId": "cks-1234567890abcdef0"})
    assert fails == [("keySpec", "a key in a custom key store must be SYMMETRIC_DEFAULT, not ML_DSA_44")]
    # a spec or usage not known yet (preview) is not judged
    assert check(KeyHandler(), {**BASE, "keySpec": UNKNOWN, "keyUsage": "SIGN_VERIFY"}) == []
    # the defaults are a symmetric encryption key
    assert check(KeyHandler(), dict(BASE)) == []


def test_provider_check_marks_the_material_secret_and_names_the_property():
    provider = KmsIacProvider()
    material = b64(pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    news = wrap_map({**BASE, "keySpec": "RSA_3072", "keyUsage": "SIGN_VERIFY", "keyMaterial": material})
    loop = asyncio.new_event_loop()  # not asyncio.run: it unsets the thread's loop, which Pulumi's mocks use
    try:
        resp = loop.run_until_complete(provider.check(CheckRequest("urn:pulumi:s::p::kms-iac:index:ExternalKey::k", {},
                                                                   news, b"")))
    finally:
        loop.close()
    # no property name: the engine prints a named property's value beside the reason
    assert [(f.property, f.reason) for f in resp.failures] == [
        ("", "keyMaterial does not fit keySpec RSA_3072: The key material is not a PKCS #8 DER-encoded "
                        "private key of key spec RSA_3072.")]
    values, secrets = unwrap_map(resp.inputs)
    assert "keyMaterial" in secrets and values["keyMaterial"] == material
    assert material not in " ".join(f.reason for f in resp.failures)


# -- material that does not fit its spec -------------------------------------------------------

def _external(spec: str, usage: str, raw: bytes) -> list[tuple[str, str]]:
    return check(ExternalKeyHandler(), {**BASE, "keySpec": spec, "keyUsage": usage, "keyMaterial": b64(raw)})


def test_material_must_fit_the_spec():
    rsa2048 = pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    p256 = pkcs8(ec.generate_private_key(ec.SECP256R1()))
    edwards = pkcs8(ed25519.Ed25519PrivateKey.generate())
    ok = [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", os.urandom(32)), ("HMAC_256", "GENERATE_VERIFY_MAC", os.urandom(32)),
          ("HMAC_256", "GENERATE_VERIFY_MAC", os.urandom(64)), ("HMAC_512", "GENERATE_VERIFY_MAC", os.urandom(128)),
          ("RSA_2048", "SIGN_VERIFY", rsa2048), ("RSA_2048", "ENCRYPT_DECRYPT", rsa2048),
          ("ECC_NIST_P256", "KEY_AGREEMENT", p256), ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", edwards),
          ("ECC_SECG_P256K1", "SIGN_VERIFY", pkcs8(ec.generate_private_key(ec.SECP256K1())))]
    for spec, usage, raw in ok:
        assert _external(spec, usage, raw) == [], spec
    bad = [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", os.urandom(16), "must be 256 bits (32 bytes)"),
           ("HMAC_256", "GENERATE_VERIFY_MAC", os.urandom(31), "must be between 32 and 64 bytes long"),
           ("HMAC_256", "GENERATE_VERIFY_MAC", os.urandom(65), "must be between 32 and 64 bytes long"),
           ("HMAC_384", "GENERATE_VERIFY_MAC", os.urandom(47), "must be between 48 and 128 bytes long"),
           ("RSA_3072", "SIGN_VERIFY", rsa2048, "not a PKCS #8 DER-encoded private key of key spec RSA_3072"),
           ("ECC_NIST_P384", "SIGN_VERIFY", p256, "not a PKCS #8 DER-encoded private key of key spec ECC_NIST_P384"),
           ("ECC_NIST_P256", "SIGN_VERIFY", edwards, "of key spec ECC_NIST_P256"),
           ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", p256, "of key spec ECC_NIST_EDWARDS25519"),
           ("RSA_2048", "SIGN_VERIFY", os.urandom(32), "of key spec RSA_2048"),
           # a public key is not key material
           ("ECC_NIST_P256", "SIGN_VERIFY", spki(ec.generate_private_key(ec.SECP256R1())), "of key spec ECC_NIST_P256")]
    for spec, usage, raw, why in bad:
        (fail,) = _external(spec, usage, raw)
        assert fail[0] == "" and fail[1].startswith(f"keyMaterial does not fit keySpec {spec}: ") \
            and why in fail[1], (spec, fail)
    assert check(ExternalKeyHandler(), {**BASE, "keyMaterial": "not base64!"}) == [("", "keyMaterial must be base64")]
    # material known, spec not yet (preview): only its encoding is judged
    assert check(ExternalKeyHandler(), {**BASE, "keySpec": UNKNOWN, "keyMaterial": b64(b"x")}) == []


# -- wrapping ---------------------------------------------------------------------------------

def test_wrapping_is_chosen_for_the_material():
    assert wrapping_for("SYMMETRIC_DEFAULT", os.urandom(32)) == ("RSAES_OAEP_SHA_256", "RSA_2048")
    assert wrapping_for("HMAC_512", os.urandom(128)) == ("RSAES_OAEP_SHA_256", "RSA_2048")
    assert wrapping_for("ECC_NIST_EDWARDS25519", pkcs8(ed25519.Ed25519PrivateKey.generate())) == \
        ("RSAES_OAEP_SHA_256", "RSA_2048")
    assert wrapping_for("ECC_NIST_P384", pkcs8(ec.generate_private_key(ec.SECP384R1()))) == \
        ("RSAES_OAEP_SHA_256", "RSA_2048")  # 185 bytes: one OAEP block under RSA_2048 holds 190
    # AWS: RSA private keys need RSA_AES_KEY_WRAP; ECC_NIST_P521 cannot be OAEP-wrapped under RSA_2048
    assert wrapping_for("RSA_2048", pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=2048))) == \
        ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")
    assert wrapping_for("ECC_NIST_P521", pkcs8(ec.generate_private_key(ec.SECP521R1()))) == \
        ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")
    assert wrapping_for("ECC_NIST_P521", os.urandom(100)) == ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")  # short, still refused
    assert wrapping_for("HMAC_512", os.urandom(191)) == ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")


def test_rsa_aes_key_wrap_has_aws_documented_layout():
    """RSA-OAEP-SHA-256(ephemeral AES-256 key) || AES-KWP(material), unwrapped here by hand."""
    wrapping = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    material = pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    blob = wrap("RSA_AES_KEY_WRAP_SHA_256", spki(wrapping), material)
    aes_key = wrapping.decrypt(blob[:512], OAEP)
    assert len(aes_key) == 32 and aes_key_unwrap_with_padding(aes_key, blob[512:]) == material
    assert wrapping.decrypt(wrap("RSAES_OAEP_SHA_256", spki(wrapping), b"k" * 32), OAEP) == b"k" * 32


# -- imports through the handler, checked on the material's own cryptography ----------------------

def _create_external(kms, spec: str, usage: str, raw: bytes, **extra) -> tuple[str, dict]:
    inputs = {**BASE, "keySpec": spec, "keyUsage": usage, "keyMaterial": b64(raw), **extra}
    assert check(ExternalKeyHandler(), inputs) == []
    return ExternalKeyHandler().create(kms, "kms-iac:index:ExternalKey t", inputs)


@pytest.mark.parametrize("spec,curve", [("ECC_NIST_P521", ec.SECP521R1), ("ECC_NIST_P384", ec.SECP384R1),
                                        ("ECC_SECG_P256K1", ec.SECP256K1)])
def test_imported_ecdsa_keys_sign_with_the_imported_key(kms, spec, curve):
    private = ec.generate_private_key(curve())
    key_id, state = _create_external(kms, spec, "SIGN_VERIFY", pkcs8(private))
    assert (state["keySpec"], state["keyUsage"], state["keyState"]) == (spec, "SIGN_VERIFY", "Enabled")
    assert kms.get_public_key(KeyId=key_id)["PublicKey"] == spki(private)
    algorithm = {"ECC_NIST_P521": "ECDSA_SHA_512", "ECC_NIST_P384": "ECDSA_SHA_384"}.get(spec, "ECDSA_SHA_256")
    sig = kms.sign(KeyId=key_id, Message=b"release", SigningAlgorithm=algorithm)["Signature"]
    private.public_key().verify(sig, b"release", ec.ECDSA(getattr(hashes, "SHA" + algorithm[-3:])()))


def test_imported_key_agreement_and_ed25519_keys(kms):
    private = ec.generate_private_key(ec.SECP384R1())
    key_id, _ = _create_external(kms, "ECC_NIST_P384", "KEY_AGREEMENT", pkcs8(private))
    peer = ec.generate_private_key(ec.SECP384R1())
    secret = kms.derive_shared_secret(KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=spki(peer))["SharedSecret"]
    assert secret == peer.exchange(ec.ECDH(), private.public_key())

    edwards = ed25519.Ed25519PrivateKey.generate()
    key_id, _ = _create_external(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY", pkcs8(edwards))
    sig = kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="ED25519_SHA_512")["Signature"]
    edwards.public_key().verify(sig, b"m")


def test_adoption_needs_the_same_spec_and_usage(kms):
    from tests.test_provider_lifecycle import _orphan_handler
    from kms_iac.provider.orphans import URN_TAG

    urn = "urn:pulumi:dev::p::kms-iac:index:ExternalKey::mac"
    creating = [{"TagKey": URN_TAG, "TagValue": f"creating {urn}"}]
    other = kms.create_key(Origin="EXTERNAL", KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC", Tags=creating)
    waiting = kms.create_key(Origin="EXTERNAL", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Tags=creating)
    handler = _orphan_handler(ExternalKeyHandler)
    secret = os.urandom(32)
    key_id, state = handler.create(kms, "kms-iac:index:ExternalKey mac",
                                   {**BASE, "keySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC", "keyMaterial": b64(secret)},
                                   urn)
    assert key_id == waiting["KeyMetadata"]["KeyId"] and state["keyState"] == "Enabled"
    assert handler.log.lines[-1].startswith(f"adopted key {key_id}")
    other_md = kms.describe_key(KeyId=other["KeyMetadata"]["KeyId"])["KeyMetadata"]
    inputs = {"keySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC"}
    assert handler.adoption_mismatch(other_md, inputs) == "KeySpec HMAC_384 (wanted HMAC_256)"
    mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == hmac.new(secret, b"m", hashlib.sha256).digest()
    assert kms.describe_key(KeyId=other["KeyMetadata"]["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"


def test_material_that_does_not_fit_creates_no_key(kms):
    inputs = {**BASE, "keySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC", "keyMaterial": b64(os.urandom(16))}
    with pytest.raises(Exception, match="import failed: keyMaterial does not fit keySpec HMAC_256"):
        ExternalKeyHandler().create(kms, "kms-iac:index:ExternalKey t", inputs)
    assert kms.list_keys()["Keys"] == []


# -- replicas of multi-Region primaries of every kind -----------------------------------------------

@pytest.mark.parametrize("spec,usage", [("ML_DSA_65", "SIGN_VERIFY"), ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
                                        ("HMAC_256", "GENERATE_VERIFY_MAC"), ("ECC_NIST_P256", "KEY_AGREEMENT"),
                                        ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")])
def test_replicas_of_multi_region_primaries(tmp_path, spec, usage):
    data = tmp_path / "kms-data"
    us, eu = embedded_client(data), embedded_client(data, region="eu-west-1")
    primary_inputs = {**BASE, "keySpec": spec, "keyUsage": usage, "multiRegion": True}
    assert check(KeyHandler(), primary_inputs) == []
    _, primary = KeyHandler().create(us, "kms-iac:index:Key p", primary_inputs)
    replica_inputs = {**BASE, "primaryKeyArn": primary["arn"], "description": "in eu"}
    assert check(ReplicaKeyHandler(), replica_inputs) == []
    handler = ReplicaKeyHandler()
    handler.regional = lambda region: embedded_client(data, region=region)  # what Configure sets
    arn, state = handler.create(eu, "kms-iac:index:ReplicaKey r", replica_inputs)
    assert (state["keySpec"], state["keyUsage"], state["keyState"]) == (spec, usage, "Enabled")
    assert arn.startswith("arn:aws:kms:eu-west-1:") and state["keyId"] == primary["keyId"]
    message = b"across regions"
    if usage == "SIGN_VERIFY":  # signed by the replica, verified by the primary
        algorithm = "ML_DSA_SHAKE_256" if spec.startswith("ML_DSA") else "ED25519_SHA_512"
        sig = eu.sign(KeyId=arn, Message=message, SigningAlgorithm=algorithm)["Signature"]
        assert us.verify(KeyId=primary["arn"], Message=message, Signature=sig, SigningAlgorithm=algorithm)["SignatureValid"]
    elif usage == "GENERATE_VERIFY_MAC":
        mac = eu.generate_mac(KeyId=arn, Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
        assert us.verify_mac(KeyId=primary["arn"], Message=message, Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    elif usage == "KEY_AGREEMENT":
        peer = spki(ec.generate_private_key(ec.SECP256R1()))
        secrets = {c.derive_shared_secret(KeyId=k, KeyAgreementAlgorithm="ECDH", PublicKey=peer)["SharedSecret"]
                   for c, k in ((us, primary["arn"]), (eu, arn))}
        assert len(secrets) == 1
    else:  # encapsulated to the primary's public key, decapsulated by the replica
        public = serialization.load_der_public_key(us.get_public_key(KeyId=primary["arn"])["PublicKey"])
        shared, ciphertext = public.encapsulate()
        assert eu.decapsulate(KeyId=arn, SharedSecretCiphertextBlob=ciphertext, EncapsulationAlgorithm="ML_KEM")["SharedSecret"] == shared


# -- components ---------------------------------------------------------------------------------

def test_signing_key_takes_ed25519_and_ml_dsa(mocks):  # noqa: F811 - the fixture
    from kms_iac.components import ComponentInputError, SigningKey

    run(lambda: (SigningKey("ed", tenant="ed", key_spec="ECC_NIST_EDWARDS25519"),
                 SigningKey("pq", tenant="pq", key_spec="ML_DSA_87")))
    keys = by(mocks, "kms-iac:index:Key")
    assert (keys["ed"].inputs["keySpec"], keys["pq"].inputs["keySpec"]) == ("ECC_NIST_EDWARDS25519", "ML_DSA_87")
    assert {k.inputs["keyUsage"] for k in keys.values()} == {"SIGN_VERIFY"}
    with pytest.raises(ComponentInputError, match="'ML_KEM_768' cannot sign; use one of .*ECC_NIST_EDWARDS25519, ML_DSA_44"):
        SigningKey("kem", tenant="kem", key_spec="ML_KEM_768")


def test_imported_key_passes_spec_and_usage_through(mocks):  # noqa: F811 - the fixture
    from kms_iac.components import ComponentInputError, ImportedKey

    signer = f"arn:aws:iam::{'1' * 12}:role/Signer"
    run(lambda: (ImportedKey("sym", tenant="sym", key_material="AAAA"),
                 ImportedKey("mac", tenant="mac", key_material="AAAA", key_spec="HMAC_384",
                             mac_users=[f"arn:aws:iam::{'1' * 12}:role/Tok"]),
                 ImportedKey("sig", tenant="sig", key_material="AAAA", key_spec="RSA_2048", key_usage="SIGN_VERIFY",
                             signers=[signer])))
    keys = by(mocks, "kms-iac:index:ExternalKey")
    assert (keys["sym"].inputs["keySpec"], keys["sym"].inputs["keyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert (keys["mac"].inputs["keySpec"], keys["mac"].inputs["keyUsage"]) == ("HMAC_384", "GENERATE_VERIFY_MAC")
    assert (keys["sig"].inputs["keySpec"], keys["sig"].inputs["keyUsage"]) == ("RSA_2048", "SIGN_VERIFY")
    sig_policy = json.loads(keys["sig"].inputs["policy"])
    assert any(s["Sid"] == "KeySigners" and s["Principal"] == {"AWS": signer} for s in sig_policy["Statement"])
    assert "KeyMacUsers" in [s["Sid"] for s in json.loads(keys["mac"].inputs["policy"])["Statement"]]
    for kwargs, message in (
        ({"key_spec": "RSA_2048"}, r"key_usage: a RSA_2048 key can be ENCRYPT_DECRYPT or SIGN_VERIFY; say which"),
        ({"key_spec": "ML_DSA_65"}, r"key_spec: key material cannot be imported into ML_DSA_65 keys"),
        ({"key_spec": "ECC_NIST_P256", "key_usage": "ENCRYPT_DECRYPT"},
         r"key_usage: keyUsage ENCRYPT_DECRYPT is not valid for keySpec ECC_NIST_P256"),
        ({"signers": [signer]}, r"signers: only a SIGN_VERIFY key has signers; this key's usage is ENCRYPT_DECRYPT"),
    ):
        with pytest.raises(ComponentInputError, match=message):
            ImportedKey("bad", tenant="bad", key_material="AAAA", **kwargs)


# -- the real engine ----------------------------------------------------------------------------

PROGRAM = """
import pulumi
from kms_iac import resources as kms

cfg = pulumi.Config()
window = dict(deletion_window_in_days=7)
mldsa = kms.Key("mldsa", key_spec="ML_DSA_65", key_usage="SIGN_VERIFY", **window)
edwards = kms.Key("ed25519", key_spec="ECC_NIST_EDWARDS25519", key_usage="SIGN_VERIFY", **window)
ecdh = kms.Key("ecdh", key_spec="ECC_NIST_P256", key_usage="KEY_AGREEMENT", **window)
mlkem = kms.Key("mlkem", key_spec="ML_KEM_768", key_usage="ENCAPSULATE_DECAPSULATE", **window)
rsa = kms.ExternalKey("rsa", key_spec="RSA_2048", key_usage="SIGN_VERIFY",
                      key_material=cfg.require_secret("rsaMaterial"), **window)
mac = kms.ExternalKey("mac", key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC",
                      key_material=cfg.require_secret("hmacMaterial"), **window)
for name, key in dict(mldsa=mldsa, edwards=edwards, ecdh=ecdh, mlkem=mlkem, rsa=rsa, mac=mac).items():
    pulumi.export(name, key.key_id)
"""

BAD_KEY = """
from kms_iac import resources as kms
kms.Key("kem", key_spec="ML_KEM_768", key_usage="SIGN_VERIFY")
"""
BAD_MATERIAL = """
from kms_iac import resources as kms
kms.ExternalKey("rsa3072", key_spec="RSA_3072", key_usage="SIGN_VERIFY", key_material="MATERIAL")  # not even a secret
"""


def check_failure(project: PulumiProject, program: str, resource: str) -> str:
    """The engine's error for ``program``, whose ``resource`` fails Check in a preview."""
    project.write_program(program)
    proc = project.run("preview", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert f"{resource} resource '" in text and "has a problem: " in text and "Traceback" not in text, text
    return text


@pytest.mark.slow
def test_every_key_kind_through_the_engine(tmp_path):
    data = tmp_path / "kms-data"
    project = PulumiProject(tmp_path, pulumi_bin_dir(), config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_material, hmac_secret = b64(pkcs8(signer)), os.urandom(48)
    project.run("config", "set", "--secret", "rsaMaterial", rsa_material)
    project.run("config", "set", "--secret", "hmacMaterial", b64(hmac_secret))
    project.write_program(PROGRAM)
    project.up()
    out = project.outputs()
    us = embedded_client(data)
    message = b"release 1.2.3"

    def public(key_id: str):
        return serialization.load_der_public_key(us.get_public_key(KeyId=key_id)["PublicKey"])

    # ML-DSA-65: KMS's signature verifies with the public key alone
    sig = us.sign(KeyId=out["mldsa"], Message=message, SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    pub = public(out["mldsa"])
    assert isinstance(pub, mldsa.MLDSA65PublicKey)
    pub.verify(sig, message)
    # Ed25519
    sig = us.sign(KeyId=out["edwards"], Message=message, SigningAlgorithm="ED25519_SHA_512")["Signature"]
    public(out["edwards"]).verify(sig, message)
    # ECDH on P-256: the same secret on both sides
    peer = ec.generate_private_key(ec.SECP256R1())
    peer_spki = spki(peer)
    derived = us.derive_shared_secret(KeyId=out["ecdh"], KeyAgreementAlgorithm="ECDH", PublicKey=peer_spki)
    assert derived["SharedSecret"] == peer.exchange(ec.ECDH(), public(out["ecdh"]))
    # ML-KEM-768: encapsulated locally to the public key, decapsulated by KMS
    kem_public = public(out["mlkem"])
    assert isinstance(kem_public, mlkem.MLKEM768PublicKey)
    shared, ciphertext = kem_public.encapsulate()
    assert us.decapsulate(KeyId=out["mlkem"], SharedSecretCiphertextBlob=ciphertext,
                          EncapsulationAlgorithm="ML_KEM")["SharedSecret"] == shared
    # imported RSA_2048: KMS signs with the very key generated here
    assert us.get_public_key(KeyId=out["rsa"])["PublicKey"] == spki(signer)
    sig = us.sign(KeyId=out["rsa"], Message=message, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    signer.public_key().verify(sig, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    # imported HMAC_256: KMS's MAC is the one computed here with the same secret
    mac = us.generate_mac(KeyId=out["mac"], Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == hmac.new(hmac_secret, message, hashlib.sha256).digest()
    for name, spec in (("rsa", "RSA_2048"), ("mac", "HMAC_256")):
        md = us.describe_key(KeyId=out[name])["KeyMetadata"]
        assert (md["Origin"], md["KeySpec"], md["KeyState"]) == ("EXTERNAL", spec, "Enabled")

    # the material is a secret in the state, and nothing drifts
    exported = project.run("stack", "export").stdout
    assert rsa_material not in exported and b64(hmac_secret) not in exported
    project.run("preview", "--expect-no-changes")

    # a pair KMS refuses, and material of another size, fail at Check in a preview
    before = len(us.list_keys()["Keys"])
    text = check_failure(project, BAD_KEY, "kms-iac:index:Key")
    assert "keyUsage SIGN_VERIFY is not valid for keySpec ML_KEM_768 (valid: ENCAPSULATE_DECAPSULATE)" in text
    text = check_failure(project, BAD_MATERIAL.replace("MATERIAL", rsa_material), "kms-iac:index:ExternalKey")
    assert ("keyMaterial does not fit keySpec RSA_3072: The key material is not a PKCS #8 DER-encoded private key "
            "of key spec RSA_3072") in text
    assert rsa_material not in text
    assert len(us.list_keys()["Keys"]) == before  # nothing was created

    project.write_program(PROGRAM)
    project.run("destroy", "--yes")
    for name in ("mldsa", "edwards", "ecdh", "mlkem", "rsa", "mac"):
        assert us.describe_key(KeyId=out[name])["KeyMetadata"]["KeyState"] == "PendingDeletion"
