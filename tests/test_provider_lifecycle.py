"""The provider's lifecycle edges: a key replaced for another key type keeps its alias,
every key carries its Pulumi URN so an interrupted deployment's key is found and adopted,
failures read as one line naming the resource, and a target that cannot work fails at
Configure in seconds. Engine tests drive the real Pulumi CLI; handler tests call the
resource handlers on the embedded backend directly."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from kms_iac.backend.embedded import embedded_client
from kms_iac.engine import PulumiProject, pulumi_bin_dir
from kms_iac.provider.engine_log import EngineLog
from kms_iac.provider.errors import ProviderError
from kms_iac.provider.orphans import MAX_TAGS, URN_TAG, OrphanIndex, find_orphans, urn_tag_value
from kms_iac.provider.provider import KmsIacProvider
from kms_iac.provider.resources.external_key import ExternalKeyHandler
from kms_iac.provider.resources.key import KeyHandler
from kms_iac.provider.resources.replica_key import ReplicaKeyHandler
from kms_iac.provider.server import error_message
from tests.helpers import MotoServer, ServerProcess, free_port

ACCOUNT = "111122223333"


@pytest.fixture(scope="module")
def pulumi_bin():
    return pulumi_bin_dir()


def raw_tags(kms, key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


def output_of(proc) -> str:
    return proc.stdout + proc.stderr


def assert_one_line_error(out: str, needle: str) -> str:
    """The error is on one line, with no Python traceback and no gRPC wrapper text around it."""
    assert "Unexpected <class" not in out and "Traceback" not in out and 'File "' not in out, out
    lines = [line.strip() for line in out.splitlines() if needle in line]
    assert lines, out
    # In the Diagnostics section the message is alone under its resource's heading.
    diag = out[out.index("Diagnostics:"):]
    block = diag[diag.index(needle):].split("\n\n", 1)[0]
    assert "\n" not in block.strip(), block
    return lines[-1]


# -- a key replaced for a new key type keeps its alias ---------------------------------------------

ALIAS_PROGRAM = """
import json
import pulumi
from kms_iac import resources as kms

spec = json.loads(pulumi.Config().require("spec"))
key = kms.Key("signer", key_spec=spec["key_spec"], key_usage=spec["key_usage"], deletion_window_in_days=7)
kms.Alias("signer", name=spec["alias"], target_key_id=key.key_id)
pulumi.export("key_id", key.key_id)
"""


@pytest.fixture(params=["embedded", "moto"])
def target(request, tmp_path):
    """(provider config, boto3 client onto the same KMS)."""
    if request.param == "embedded":
        data = tmp_path / "kms-data"
        yield {"kms-iac:target": "local", "kms-iac:dataDir": str(data)}, embedded_client(data)
    else:
        with MotoServer() as moto:
            yield {"kms-iac:target": moto.url}, moto.client()


def test_alias_is_recreated_when_its_key_is_replaced_by_another_key_type(target, tmp_path, pulumi_bin):
    config, kms = target
    project = PulumiProject(tmp_path, pulumi_bin, config=config)
    project.write_program(ALIAS_PROGRAM)
    alias = f"alias/signer-{uuid.uuid4().hex[:6]}"
    project.run("config", "set", "spec", json.dumps({"key_spec": "SYMMETRIC_DEFAULT", "key_usage": "ENCRYPT_DECRYPT",
                                                     "alias": alias}))
    project.up()
    old_id = project.outputs()["key_id"]
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == old_id

    # KMS refuses UpdateAlias onto a key of another usage/spec; the alias is recreated instead
    project.run("config", "set", "spec", json.dumps({"key_spec": "RSA_2048", "key_usage": "SIGN_VERIFY", "alias": alias}))
    proc = project.up()
    new_id = project.outputs()["key_id"]
    assert new_id != old_id, output_of(proc)
    md = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert md["KeyId"] == new_id and md["KeySpec"] == "RSA_2048" and md["KeyUsage"] == "SIGN_VERIFY"
    assert kms.describe_key(KeyId=old_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    # the alias works: it signs with the new key
    sig = kms.sign(KeyId=alias, Message=b"release", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    assert kms.verify(KeyId=new_id, Message=b"release", Signature=sig, SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"]
    project.run("preview", "--expect-no-changes")
    alias_state = project.resource("kms-iac:index:Alias", "signer")["outputs"]
    assert alias_state["targetKeyId"] == new_id and alias_state["targetKeyArn"] == md["Arn"]


def test_alias_update_the_backend_accepts_stays_an_update(tmp_path):
    """Same key type: one UpdateAlias, the alias never disappears (no DeleteAlias in the audit log)."""
    from kms_iac.provider.resources.alias import AliasHandler

    data = tmp_path / "kms-data"
    kms = embedded_client(data)
    a, b = (kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(2))
    handler = AliasHandler()
    _, state = handler.create(kms, "kms-iac:index:Alias x", {"name": "alias/x", "targetKeyId": a})
    state = handler.update(kms, "kms-iac:index:Alias x", "alias/x", state, {"name": "alias/x", "targetKeyId": b},
                           ["targetKeyId"])
    assert state["targetKeyId"] == b
    events = [json.loads(line)["eventName"] for line in (data / "audit.log").read_text().splitlines()]
    assert "UpdateAlias" in events and "DeleteAlias" not in events


def test_alias_recreation_puts_the_alias_back_when_create_fails(tmp_path):
    """If CreateAlias on the new key fails after the DeleteAlias, the alias goes back on its old key."""
    from kms_iac.provider.resources.alias import AliasHandler

    kms = embedded_client(tmp_path / "kms-data")
    old = kms.create_key()["KeyMetadata"]["KeyId"]
    signer = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/keep", TargetKeyId=old)

    def refuse_new_target(params, **_):  # fault injection at the client: KMS refuses the new key
        if params.get("TargetKeyId") == signer:
            raise ClientError({"Error": {"Code": "LimitExceededException", "Message": "too many aliases"}}, "CreateAlias")

    kms.meta.events.register("provide-client-params.kms.CreateAlias", refuse_new_target)
    with pytest.raises(ProviderError) as err:
        AliasHandler().update(kms, "kms-iac:index:Alias keep", "alias/keep", {"name": "alias/keep", "targetKeyId": old},
                              {"name": "alias/keep", "targetKeyId": signer}, ["targetKeyId"])
    assert str(err.value) == "kms-iac:index:Alias keep: CreateAlias failed: LimitExceededException: too many aliases"
    assert kms.describe_key(KeyId="alias/keep")["KeyMetadata"]["KeyId"] == old


# -- the URN tag ------------------------------------------------------------------------------------------

def test_urn_tag_is_written_hidden_from_diffs_and_kms012_ignores_it(tmp_path, pulumi_bin):
    from kms_iac.rules.adapters.live_data_dir import scan_data_dir
    from kms_iac.rules.engine import evaluate

    data = tmp_path / "kms-data"
    project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})
    program = """
import pulumi
from kms_iac import resources as kms
owned = kms.Key("owned", description="tenant key", tags=TAGS)
kms.Alias("owned", name="alias/owned", target_key_id=owned.key_id)
unowned = kms.Key("unowned", description="no tenant tag", tags={"team": "payments"})
kms.Alias("unowned", name="alias/unowned", target_key_id=unowned.key_id)
pulumi.export("owned", owned.key_id)
pulumi.export("unowned", unowned.key_id)
"""
    project.write_program(program.replace("TAGS", '{"tenant": "orders"}'))
    project.up()
    out = project.outputs()
    kms = embedded_client(data)
    key_state = project.resource("kms-iac:index:Key", "owned")
    assert raw_tags(kms, out["owned"]) == {"tenant": "orders", URN_TAG: key_state["urn"]}
    assert key_state["outputs"]["tags"] == {"tenant": "orders"} and key_state["inputs"]["tags"] == {"tenant": "orders"}
    project.run("preview", "--diff", "--expect-no-changes")
    project.run("refresh", "--yes")
    project.run("preview", "--diff", "--expect-no-changes")

    # the program's tags change: the URN tag stays, and still no diff afterwards
    project.write_program(program.replace("TAGS", '{"tenant": "orders", "env": "prod"}'))
    project.up()
    assert raw_tags(kms, out["owned"]) == {"tenant": "orders", "env": "prod", URN_TAG: key_state["urn"]}
    project.run("preview", "--expect-no-changes")

    # KMS012 (alias and tenant tag) on the live keys: the URN tag is no tenant tag
    findings = {(f.resource.rsplit("/", 1)[-1], f.rule): f for f in evaluate(scan_data_dir(data).views)}
    assert findings[(out["owned"], "KMS012")].status == "PASS"
    unowned = findings[(out["unowned"], "KMS012")]
    assert unowned.status == "FAIL" and "'tenant' tag" in unowned.message


def test_urn_tag_values_fit_aws_limits():
    plain = "urn:pulumi:dev::orders::kms-iac:index:Key::orders"
    assert urn_tag_value(plain) == plain
    child = "urn:pulumi:dev::orders::kms-iac:index:TenantKey$kms-iac:index:Key::orders"
    value = urn_tag_value(child)
    assert "$" not in value and value.startswith("urn:pulumi:dev::orders::kms-iac:index:TenantKey_kms-iac:index:Key")
    assert value != urn_tag_value(child.replace("$", "_"))  # still names one URN
    long = plain + "x" * 300
    assert len(urn_tag_value(long)) <= 256 and urn_tag_value(long) != urn_tag_value(long + "y")


def test_the_program_may_use_all_50_tags(tmp_path):
    """The URN tag is skipped when the program's tags fill AWS's limit, and yields when they grow to it."""
    kms = embedded_client(tmp_path / "kms-data")
    handler, name, urn = KeyHandler(), "kms-iac:index:Key k", "urn:pulumi:dev::p::kms-iac:index:Key::k"
    base = {"keySpec": "SYMMETRIC_DEFAULT", "keyUsage": "ENCRYPT_DECRYPT", "deletionWindowInDays": 7}
    full = {f"t{i}": str(i) for i in range(MAX_TAGS)}
    key_id, state = handler.create(kms, name, {**base, "tags": full}, urn)
    assert raw_tags(kms, key_id) == full and state["tags"] == full

    tags49 = {f"t{i}": str(i) for i in range(MAX_TAGS - 1)}
    key_id, state = handler.create(kms, name, {**base, "tags": tags49}, urn)
    assert raw_tags(kms, key_id) == {**tags49, URN_TAG: f"creating {urn}"} and state["tags"] == tags49
    handler.handed_over(kms, name, key_id, urn, {**base, "tags": tags49})  # the engine received the answer
    assert raw_tags(kms, key_id) == {**tags49, URN_TAG: urn}
    state = handler.update(kms, name, key_id, state, {**base, "tags": full}, ["tags"])
    assert raw_tags(kms, key_id) == full and state["tags"] == full
    assert handler.validate({"tags": {URN_TAG: "mine"}}) == [
        ("tags", f"tag key '{URN_TAG}' is set by the provider (the resource's Pulumi URN)")]


# -- orphans: a key no state knows ------------------------------------------------------------------

ORPHAN_PROGRAM = """
import pulumi
from kms_iac import resources as kms
key = kms.Key("orders", description=DESCRIPTION, enable_key_rotation=True, tags={"tenant": "orders"},
              deletion_window_in_days=7)
kms.Alias("orders", name="alias/orders", target_key_id=key.key_id)
pulumi.export("key_id", key.key_id)
"""


def _audit(data_dir) -> list[dict]:
    path = data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _plugins_of(project: PulumiProject) -> list[int]:
    """Pids of provider plugins the project's Pulumi home started (the engine does not wait for them)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and "pulumi-resource-kms-iac" in cmdline and str(project.home) in cmdline:
            pids.append(int(proc.name))
    return pids


def test_a_key_left_by_an_interrupted_deployment_is_adopted(tmp_path, pulumi_bin):
    """`pulumi up` killed (as a double Ctrl-C does) after CreateKey: the next up adopts the key."""
    data, port = tmp_path / "server-data", free_port()
    # A quota of one request a second keeps the create busy configuring the key for seconds.
    with ServerProcess(data, "--port", str(port), "--requests-per-second", "1") as srv:
        project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": srv.url})
        project.write_program(ORPHAN_PROGRAM.replace("DESCRIPTION", '"orders"'))
        up = subprocess.Popen(["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"], cwd=project.dir,
                              env=project.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
        _wait(lambda: [e for e in _audit(data) if e["eventName"] == "CreateKey" and not e.get("errorCode")],
              120, "CreateKey")
        os.killpg(up.pid, signal.SIGKILL)  # the CLI and its language host; the plugin has its own group
        up.wait()
        # The plugin finishes configuring the key, cannot answer, notices its engine is gone and exits.
        plugins = _plugins_of(project)
        try:
            _wait(lambda: not any(Path(f"/proc/{pid}").exists() for pid in plugins), 120, "the orphaned plugin to exit")
        finally:
            for pid in _plugins_of(project):
                os.kill(pid, signal.SIGKILL)
    with ServerProcess(data, "--port", str(port)) as srv:  # the same endpoint, without the quota
        kms = srv.client()
        (key_id,) = [k["KeyId"] for k in kms.list_keys()["Keys"]]
        urn = "urn:pulumi:test::kms-iac-test::kms-iac:index:Key::orders"
        assert raw_tags(kms, key_id) == {"tenant": "orders", URN_TAG: f"creating {urn}"}
        assert find_orphans(kms) == [{"keyId": key_id, "keyState": "Enabled", "urn": urn}]
        project.run("cancel", "--yes")  # the killed CLI's lock
        project.write_program(ORPHAN_PROGRAM.replace("DESCRIPTION", '"orders, adopted"'))
        out = output_of(project.up())
        assert project.outputs()["key_id"] == key_id, out
        assert f"adopted key {key_id}" in out, out
        assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key_id]  # no second key
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "orders, adopted"
        assert raw_tags(kms, key_id) == {"tenant": "orders", URN_TAG: urn}  # handed over now
        assert find_orphans(kms) == []
        project.run("preview", "--expect-no-changes")

        # `--replace` calls no Diff before its Create: the key it replaces says it was handed
        # over, so it is not adopted; a new key is made and the old one scheduled for deletion.
        project.run("up", "--yes", "--skip-preview", "--replace", urn)
        new_id = project.outputs()["key_id"]
        assert new_id != key_id
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
        assert kms.describe_key(KeyId="alias/orders")["KeyMetadata"]["KeyId"] == new_id
        # an alias replaced under the same name: the create keeps it, the delete of the old one leaves it
        alias_urn = project.resource("kms-iac:index:Alias", "orders")["urn"]
        out = output_of(project.run("up", "--yes", "--skip-preview", "--replace", alias_urn))
        assert "kept alias/orders" in out, out
        assert kms.describe_key(KeyId="alias/orders")["KeyMetadata"]["KeyId"] == new_id
        project.run("preview", "--expect-no-changes")


def _orphan_handler(handler_cls):
    class Log(EngineLog):
        def __init__(self) -> None:
            super().__init__(None)
            self.lines: list[str] = []

        def warn(self, urn: str, message: str) -> None:
            self.lines.append(message)

    handler = handler_cls()
    handler.log, handler.orphans = Log(), OrphanIndex()
    return handler


KEY = {"keySpec": "SYMMETRIC_DEFAULT", "keyUsage": "ENCRYPT_DECRYPT", "description": "d", "deletionWindowInDays": 7,
       "isEnabled": True, "tags": {}}


def test_only_unfinished_matching_keys_are_adopted(tmp_path):
    kms = embedded_client(tmp_path / "kms-data")
    urn = "urn:pulumi:dev::p::kms-iac:index:Key::k"
    creating = [{"TagKey": URN_TAG, "TagValue": f"creating {urn}"}]
    other_type = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Tags=creating)["KeyMetadata"]["KeyId"]
    scheduled = kms.create_key(Tags=creating)["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=scheduled, PendingWindowInDays=7)
    handed_over = kms.create_key(Tags=[{"TagKey": URN_TAG, "TagValue": urn}])["KeyMetadata"]["KeyId"]
    handler = _orphan_handler(KeyHandler)
    key_id, state = handler.create(kms, "kms-iac:index:Key k", dict(KEY), urn)
    assert key_id not in (other_type, scheduled, handed_over) and state["keySpec"] == "SYMMETRIC_DEFAULT"
    (note,) = handler.log.lines
    assert f"key {other_type}, left by an interrupted create of this resource, is not adoptable" in note
    assert "KeySpec RSA_2048 (wanted SYMMETRIC_DEFAULT)" in note and "KeyUsage SIGN_VERIFY (wanted ENCRYPT_DECRYPT)" in note
    for left in (other_type, handed_over):
        assert kms.describe_key(KeyId=left)["KeyMetadata"]["KeyState"] == "Enabled"  # left alone
    assert raw_tags(kms, key_id)[URN_TAG] == f"creating {urn}"

    # an unfinished key this deployment has seen under a resource (Diff, Read, Update, Delete) is never adopted
    claimed = _orphan_handler(KeyHandler)
    claimed.orphans.claim(key_id)
    again, _ = claimed.create(kms, "kms-iac:index:Key k", dict(KEY), urn)
    assert again != key_id
    # ...and a fresh deployment that has not seen it adopts it
    adopting = _orphan_handler(KeyHandler)
    adopting.orphans.claim(again)
    assert adopting.create(kms, "kms-iac:index:Key k", dict(KEY), urn)[0] == key_id


def test_an_external_key_is_adopted_only_with_its_own_material(tmp_path):
    kms = embedded_client(tmp_path / "kms-data")
    urn = "urn:pulumi:dev::p::kms-iac:index:ExternalKey::byok"
    material = base64.b64encode(os.urandom(32)).decode()
    inputs = {**{k: v for k, v in KEY.items() if k not in ("keySpec", "keyUsage")}, "keyMaterial": material}
    # interrupted before ImportKeyMaterial: the key waits for its material
    waiting = kms.create_key(Origin="EXTERNAL", Tags=[{"TagKey": URN_TAG, "TagValue": f"creating {urn}"}])["KeyMetadata"]["KeyId"]
    handler = _orphan_handler(ExternalKeyHandler)
    key_id, state = handler.create(kms, "kms-iac:index:ExternalKey byok", dict(inputs), urn)
    assert key_id == waiting and state["keyState"] == "Enabled"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"

    # the same URN, other material: not adoptable (KMS takes only the key's own material back)
    other = {**inputs, "keyMaterial": base64.b64encode(os.urandom(32)).decode()}
    handler = _orphan_handler(ExternalKeyHandler)
    new_id, _ = handler.create(kms, "kms-iac:index:ExternalKey byok", other, urn)
    assert new_id != key_id and "it holds other key material" in handler.log.lines[0]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"  # the first key is untouched


def test_a_replica_is_adopted_in_its_region(tmp_path):
    data = tmp_path / "kms-data"
    us, eu = embedded_client(data), embedded_client(data, region="eu-west-1")
    urn = "urn:pulumi:dev::p::kms-iac:index:ReplicaKey::eu"
    primary = us.create_key(MultiRegion=True)["KeyMetadata"]["Arn"]
    replica = us.replicate_key(KeyId=primary, ReplicaRegion="eu-west-1",
                               Tags=[{"TagKey": URN_TAG, "TagValue": f"creating {urn}"}])["ReplicaKeyMetadata"]["Arn"]
    handler = _orphan_handler(ReplicaKeyHandler)
    resource_id, state = handler.create(eu, "kms-iac:index:ReplicaKey eu",
                                        {"primaryKeyArn": primary, "description": "in eu", "deletionWindowInDays": 7,
                                         "isEnabled": True, "tags": {"region": "eu"}}, urn)
    assert resource_id == replica and state["description"] == "in eu" and state["tags"] == {"region": "eu"}
    handler.handed_over(eu, "kms-iac:index:ReplicaKey eu", resource_id, urn, {"tags": {"region": "eu"}})
    assert raw_tags(eu, replica) == {"region": "eu", URN_TAG: urn}


# -- errors: one line, naming the resource -------------------------------------------------------------

def test_failures_read_as_resource_what_failed_why(tmp_path, pulumi_bin):
    data = tmp_path / "kms-data"
    project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})
    missing = "1234abcd-12ab-34cd-56ef-1234567890ab"
    project.write_program(f"""
from kms_iac import resources as kms
kms.Alias("dangling", name="alias/dangling", target_key_id="{missing}")
""")
    proc = project.run("up", "--yes", "--skip-preview", check=False)
    assert proc.returncode != 0
    line = assert_one_line_error(output_of(proc), "CreateAlias failed")
    assert re.search(r"error: kms-iac:index:Alias dangling: CreateAlias failed: NotFoundException: .*"
                     + re.escape(missing), line), line

    # an update KMS refuses: automatic rotation of a disabled key (KMSInvalidStateException)
    program = """
from kms_iac import resources as kms
kms.Key("locked", description="d", is_enabled=False, enable_key_rotation=ROTATE)
"""
    project.write_program(program.replace("ROTATE", "False"))
    project.up()
    project.write_program(program.replace("ROTATE", "True"))
    proc = project.run("up", "--yes", "--skip-preview", check=False)
    assert proc.returncode != 0
    line = assert_one_line_error(output_of(proc), "EnableKeyRotation failed")
    assert re.search(r"error: kms-iac:index:Key locked: EnableKeyRotation failed: DisabledException: \S+ is disabled", line), line


def test_unexpected_failures_still_name_the_resource():
    """What no handler words itself (a ClientError, a lost connection, a bug) is one line too."""
    provider = KmsIacProvider()

    def run(fn):
        with pytest.raises(ProviderError) as err:
            asyncio.run(provider._run("update", "kms-iac:index:Key", "kms-iac:index:Key k", "urn:x", fn))
        return str(err.value)

    def refused():
        raise ClientError({"Error": {"Code": "KMSInvalidStateException", "Message": "key is disabled"}}, "EnableKeyRotation")

    def unreachable():
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1/", error=OSError(111, "[Errno 111] Connection refused"))

    assert run(refused) == "kms-iac:index:Key k: EnableKeyRotation failed: KMSInvalidStateException: key is disabled"
    assert run(unreachable).startswith("kms-iac:index:Key k: update failed: cannot reach the embedded local backend")
    assert run(lambda: {}["x"]) == "kms-iac:index:Key k: update failed: KeyError: 'x'"
    # the SDK wraps what escapes the provider; the service unwraps it again
    try:
        try:
            raise ProviderError("kms-iac:index:Key k: create failed: why")
        except ProviderError as e:
            raise Exception(f"{e}:\n  File ...")
    except Exception as wrapped:  # noqa: BLE001
        assert error_message("Create", wrapped) == "kms-iac:index:Key k: create failed: why"


# -- a target that cannot work fails at Configure ----------------------------------------------------

def test_a_dead_endpoint_fails_at_configure_in_one_line(tmp_path, pulumi_bin):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": url})
    project.write_program("""
from kms_iac import resources as kms
kms.Key("k", description="never created")
""")
    expected = (f"kms-iac provider: cannot reach the KMS endpoint {url}: connection refused; "
                "start it with kms-iac local serve or fix kms-iac:target")
    for command in (("up", "--yes", "--skip-preview"), ("preview",)):
        start = time.monotonic()
        proc = project.run(*command, check=False)
        elapsed = time.monotonic() - start
        assert proc.returncode != 0
        assert assert_one_line_error(output_of(proc), "cannot reach").endswith(expected)
        # the whole CLI run, engine start-up included; botocore's retries alone took 28 s
        assert elapsed < 15, f"{command[0]} took {elapsed:.1f} s"


def _without_aws_credentials(project: PulumiProject, tmp_path) -> None:
    for var in [v for v in project.env if v.startswith("AWS_")]:
        del project.env[var]
    project.env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
                       AWS_EC2_METADATA_DISABLED="true")


def test_aws_without_credentials_fails_at_configure_and_with_them_never_probes_aws(tmp_path, pulumi_bin):
    project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": "aws", "kms-iac:region": "us-east-1"})
    project.write_program("""
import pulumi
from kms_iac import resources as kms
key = kms.Key("k", description="on aws")
pulumi.export("key_id", key.key_id)
""")
    _without_aws_credentials(project, tmp_path)
    start = time.monotonic()
    proc = project.run("preview", check=False)
    assert proc.returncode != 0 and time.monotonic() - start < 15
    assert "kms-iac provider: no AWS credentials for kms-iac:target aws;" in assert_one_line_error(
        output_of(proc), "no AWS credentials")

    # With credentials, Configure calls nothing: a preview works with every endpoint dead...
    dead = f"http://127.0.0.1:{free_port()}"
    project.env.update(AWS_ACCESS_KEY_ID="AKIAKMSIACTEST000001", AWS_SECRET_ACCESS_KEY="test-secret",
                       AWS_ENDPOINT_URL=dead)
    project.run("preview")
    # ...and the aws target works against moto standing in for AWS (the standard endpoint settings).
    with MotoServer() as moto:
        project.env["AWS_ENDPOINT_URL"] = moto.url
        project.up()
        key_id = project.outputs()["key_id"]
        urn = project.resource("kms-iac:index:Key", "k")["urn"]
        assert raw_tags(moto.client(), key_id) == {URN_TAG: urn}
        # on AWS orphans are not looked up (that would be one ListResourceTags per key in the account)
        project.run("state", "delete", urn, "--yes")
        project.up()
        assert project.outputs()["key_id"] != key_id
