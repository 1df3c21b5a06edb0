"""Property tests of the HTTP front door with hypothesis: whatever arrives, the server
answers a JSON error (never a 5xx, never a traceback), refusals change nothing, and the
process stays up.

One ``kms-iac local serve`` process serves the whole module. Requests are raw HTTP
(``http.client``, or a bare socket for malformed HTTP), not boto3, so the bodies,
targets and headers can be anything.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import botocore.session
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.helpers import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("http-fuzz")]  # one server and seed per worker

SERVICE = botocore.session.get_session().get_service_model("kms")
OPERATIONS = sorted(SERVICE.operation_names)
TARGET_PREFIX = "TrentService."
MUTATING_PREFIXES = (
    "Cancel", "Connect", "Create", "Delete", "Disable", "Disconnect", "Enable", "Import", "Put", "Replicate",
    "Retire", "Revoke", "Rotate", "Schedule", "Tag", "Untag", "Update",
)
MUTATING = [op for op in OPERATIONS if op.startswith(MUTATING_PREFIXES)]
# Mutating operations the backend implements: the fuzzer spends most of its time on these.
IMPLEMENTED_MUTATING = [
    "CancelKeyDeletion", "CreateAlias", "CreateKey", "DeleteAlias", "DisableKey", "DisableKeyRotation", "EnableKey",
    "EnableKeyRotation", "PutKeyPolicy", "RotateKeyOnDemand", "ScheduleKeyDeletion", "TagResource", "UntagResource",
    "UpdateAlias", "UpdateKeyDescription",
]
assert set(IMPLEMENTED_MUTATING) <= set(MUTATING)

ACCOUNT = "111122223333"
FUZZ_REGION = "us-east-1"
STATE_REGION = "eu-north-1"  # the store-unchanged property works in its own region, so its snapshots stay small


def sigv4(region: str = FUZZ_REGION, access_key: str = "AKIDEXAMPLE") -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={access_key}/20260101/{region}/kms/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abcd"
    )


# -- the server -----------------------------------------------------------------------------


@dataclass
class Known:
    """Real identifiers in the store, so fuzzed requests reach past KeyId resolution."""

    key_ids: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    ciphertexts: list[str] = field(default_factory=list)  # base64

    def strings(self) -> list[str]:
        arns = [f"arn:aws:kms:{r}:{ACCOUNT}:key/{k}" for k in self.key_ids for r in (FUZZ_REGION, STATE_REGION)]
        alias_arns = [f"arn:aws:kms:{STATE_REGION}:{ACCOUNT}:{a}" for a in self.aliases]
        return self.key_ids + arns + self.aliases + alias_arns + self.ciphertexts


KNOWN = Known()


@dataclass
class Served:
    srv: ServerProcess
    host: str
    port: int
    stderr: list[str]
    conn: http.client.HTTPConnection | None = None

    def request(
        self, target: str | None, body: bytes, auth: str | None = None, method: str = "POST",
        path: str = "/", extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request on a keep-alive connection (reopened after ``Connection: close``)."""
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Date": "20260101T000000Z"}
        if target is not None:
            headers["X-Amz-Target"] = target
        if auth is not None:
            headers["Authorization"] = auth
        headers.update(extra_headers or {})
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        if resp.will_close:
            self.conn.close()
            self.conn = None
        return resp.status, data

    def call(self, op: str, region: str, **params) -> tuple[int, dict]:
        status, data = self.request(TARGET_PREFIX + op, json.dumps(params).encode(), sigv4(region))
        return status, json.loads(data)

    def ok(self, op: str, region: str, **params) -> dict:
        status, doc = self.call(op, region, **params)
        assert status == 200, (op, params, doc)
        return doc

    def alive(self) -> bool:
        return self.srv.proc is not None and self.srv.proc.poll() is None


def _drain(stream, sink: list[str]) -> None:
    # The server's stderr is a pipe: read it continuously so logging can never block it.
    for line in iter(stream.readline, ""):
        sink.append(line)


def _seed(s: Served) -> None:
    """A few keys in several states, with aliases, tags and ciphertexts, in both regions."""
    for region in (FUZZ_REGION, STATE_REGION):
        for i in range(3):
            kid = s.ok("CreateKey", region, Description=f"fuzz seed {i}",
                       Tags=[{"TagKey": "seed", "TagValue": str(i)}])["KeyMetadata"]["KeyId"]
            KNOWN.key_ids.append(kid)
            alias = f"alias/fuzz-{region}-{i}"
            s.ok("CreateAlias", region, AliasName=alias, TargetKeyId=kid)
            KNOWN.aliases.append(alias)
            blob = s.ok("Encrypt", region, KeyId=kid, Plaintext=base64.b64encode(b"seed").decode(),
                        EncryptionContext={"i": str(i)})["CiphertextBlob"]
            KNOWN.ciphertexts.append(blob)
            if i == 1:
                s.ok("EnableKeyRotation", region, KeyId=kid)
                s.ok("RotateKeyOnDemand", region, KeyId=kid)
            if i == 2:
                s.ok("DisableKey", region, KeyId=kid)
        kid = s.ok("CreateKey", region)["KeyMetadata"]["KeyId"]
        s.ok("ScheduleKeyDeletion", region, KeyId=kid, PendingWindowInDays=7)
        KNOWN.key_ids.append(kid)
        KNOWN.key_ids.append(s.ok("CreateKey", region, Origin="EXTERNAL")["KeyMetadata"]["KeyId"])


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    srv = ServerProcess(tmp_path_factory.mktemp("fuzz-data")).start()
    host, port = srv.url.rsplit("/", 1)[-1].split(":")
    s = Served(srv, host, int(port), [])
    threading.Thread(target=_drain, args=(srv.proc.stderr, s.stderr), daemon=True).start()
    try:
        _seed(s)
        yield s
        assert s.alive(), "the server died during the fuzzing"
        assert s.request(TARGET_PREFIX + "ListKeys", b"{}", sigv4())[0] == 200
    finally:
        if s.conn is not None:
            s.conn.close()
        code = srv.stop()
    assert code == 0, f"server exit code {code}"
    logged = "".join(s.stderr)
    assert "Traceback" not in logged, logged[-3000:]


# -- strategies -----------------------------------------------------------------------------

SURROGATES = ["\ud800", "\udfff", "a\ud83d", "\udc00z"]
STRANGE_STRINGS = [
    "", " ", "\x00", "\n", "alias/", "alias/aws/", "alias/aws/s3", "alias/aws/nope", "alias/aws/ebs", "alias/x",
    "arn:aws:kms:us-east-1:111122223333:key/", f"arn:aws:kms:us-east-1:111122223333:key/{uuid.UUID(int=0)}",
    "arn:aws:kms:us-east-1:111122223333:alias/", "arn:aws:kms:::", "mrk-" + "0" * 32, str(uuid.UUID(int=1)),
    "YQ==", "AAAA", "AA==", "=", "!!!!", "not base64", "YQ", "Y Q = =", "____", "-_-_",
    "SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_256", "AES_256", "AES_128", "ENCRYPT_DECRYPT", "SIGN_VERIFY", "AWS_KMS",
    "EXTERNAL", "ALL_KEY_MATERIAL", "default", "Enabled", "aws:reserved", "AWS:x",
    '{"Statement": []}', '{"Statement": {"Effect": "Allow"}}', "[]", "null", '{"Version":"2012-10-17"}',
    json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                        "Action": "kms:*", "Resource": "*"}]}),
    "Traceback", "%s%s%s", "{0}", "'; DROP TABLE keys; --", "../../etc/passwd", "\u202e", "\U0001f600",
]

short_text = st.text(max_size=40)
long_text = st.builds(lambda c, n: c * n, st.characters(), st.integers(1_000, 200_000))
b64 = st.binary(max_size=6000).map(lambda b: base64.b64encode(b).decode())
known_string = st.integers(0, 1 << 16).map(lambda i: KNOWN.strings()[i % len(KNOWN.strings())])
fuzz_strings = st.one_of(
    short_text,
    st.sampled_from(STRANGE_STRINGS),
    st.sampled_from(SURROGATES),
    st.builds(lambda a, s, b: a + s + b, short_text, st.sampled_from(SURROGATES), short_text),
    long_text,
    b64,
    known_string,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 1, 7, 90, 2560, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30, 10**400]),
    st.floats(),  # includes NaN and +-Infinity, which Python's json emits and accepts
    fuzz_strings,
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(short_text, inner, max_size=5), max_leaves=10
)
# JSON text that json.dumps cannot produce (or produces rarely), spliced in as a member value.
RAW_FRAGMENTS = [
    "9" * 5000, "-" + "9" * 5000, "1e999", "-1e999", "1e-999", "NaN", "Infinity", "-Infinity", "-0", "1.0", "1.5",
    "0x10", "01", "[]", "{}", "[[[[[[[[[[]]]]]]]]]]", "[" * 50_000 + "]" * 50_000, '"\\ud800"', '"\\u0000"',
    '"\\udfff\\ud800"', "true", "null", '"' + "x" * 300_000 + '"',
]


def percent(draw) -> int:
    """0-99 for weighted choices (hypothesis favours a range's ends, so keep ranges wide)."""
    return draw(st.integers(0, 99))


def _shape_value(shape, depth: int = 0) -> st.SearchStrategy:
    """Values shaped like ``shape`` (often valid), with random junk mixed in at every level."""
    kind = shape.type_name
    if depth > 4:
        return json_values
    if kind == "structure":
        members = {n: _shape_value(m, depth + 1) for n, m in shape.members.items()}
        shaped = st.fixed_dictionaries({}, optional=members)
    elif kind == "list":
        shaped = st.lists(_shape_value(shape.member, depth + 1), max_size=6)
    elif kind == "map":
        shaped = st.dictionaries(st.one_of(short_text, fuzz_strings), _shape_value(shape.value, depth + 1), max_size=6)
    elif kind == "string":
        options = [fuzz_strings, known_string]
        if shape.enum:
            options.insert(0, st.sampled_from(list(shape.enum)))
        shaped = st.one_of(*options)
    elif kind in ("integer", "long"):
        lo, hi = shape.metadata.get("min", -(2**40)), shape.metadata.get("max", 2**40)
        shaped = st.one_of(st.integers(lo, hi), st.sampled_from([lo - 1, hi + 1, lo, hi, 0, -1, 2**64]))
    elif kind == "boolean":
        shaped = st.booleans()
    elif kind == "blob":
        shaped = st.one_of(b64, known_string, fuzz_strings)
    elif kind == "timestamp":
        shaped = st.one_of(st.integers(), st.floats(), fuzz_strings)
    else:
        shaped = json_values
    return st.one_of(shaped, shaped, shaped, json_values)  # mostly shaped, sometimes anything


_member_cache: dict[str, dict[str, st.SearchStrategy]] = {}
_valid_cache: dict[str, st.SearchStrategy] = {}


def member_strategies(op: str) -> dict[str, st.SearchStrategy]:
    if op not in _member_cache:
        shape = SERVICE.operation_model(op).input_shape
        _member_cache[op] = {n: _shape_value(m) for n, m in shape.members.items()} if shape is not None else {}
    return _member_cache[op]


KEYISH_MEMBERS = {"KeyId", "TargetKeyId", "DestinationKeyId", "SourceKeyId"}
alnum = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20)
known_key = st.integers(0, 1 << 16).map(lambda i: KNOWN.key_ids[i % len(KNOWN.key_ids)])
known_alias = st.integers(0, 1 << 16).map(lambda i: KNOWN.aliases[i % len(KNOWN.aliases)])
known_blob = st.integers(0, 1 << 16).map(lambda i: KNOWN.ciphertexts[i % len(KNOWN.ciphertexts)])
VALID_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "fz", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
     "Resource": "*"}]})


def _valid_value(name: str | None, shape, depth: int = 0) -> st.SearchStrategy:
    """Values that pass the service model's checks (mostly): real key ids, aliases, blobs."""
    kind = shape.type_name
    meta = shape.metadata
    if name in KEYISH_MEMBERS:
        return st.one_of(known_key, known_key, known_string, st.sampled_from(["alias/aws/s3", "alias/aws/ebs"]))
    if name == "AliasName":
        return st.one_of(known_alias, alnum.map(lambda t: "alias/fz-" + t), st.just("alias/aws/s3"))
    if name == "Policy":
        return st.sampled_from([VALID_POLICY, '{"Statement": []}', "not json", '{"Statement": {"Effect": "Allow"}}'])
    if name == "CiphertextBlob":
        return st.one_of(known_blob, known_blob, b64)
    if kind == "structure":
        req = {n: _valid_value(n, m, depth + 1) for n, m in shape.members.items() if n in shape.required_members}
        opt = {n: _valid_value(n, m, depth + 1) for n, m in shape.members.items() if n not in shape.required_members}
        return st.fixed_dictionaries(req, optional=opt)
    if kind == "list":
        return st.lists(_valid_value(None, shape.member, depth + 1), max_size=3)
    if kind == "map":
        return st.dictionaries(alnum, _valid_value(None, shape.value, depth + 1), max_size=3)
    if kind == "string":
        if shape.enum:
            return st.sampled_from(list(shape.enum))
        return alnum if meta.get("min", 0) <= 1 else st.text("abcdef0123456789", min_size=meta["min"],
                                                            max_size=meta.get("max", meta["min"]))
    if kind in ("integer", "long"):
        return st.integers(meta.get("min", 0), meta.get("max", 1000))
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        lo = meta.get("min", 0)
        return st.binary(min_size=lo, max_size=max(lo, min(meta.get("max", 64), 64))).map(
            lambda b: base64.b64encode(b).decode())
    if kind == "timestamp":
        return st.integers(1_700_000_000, 1_900_000_000)
    return json_values


def valid_members(op: str) -> st.SearchStrategy:
    if op not in _valid_cache:
        shape = SERVICE.operation_model(op).input_shape
        _valid_cache[op] = _valid_value(None, shape) if shape is not None else st.just({})
    return _valid_cache[op]


def _object_text(members: list[tuple[str, str]]) -> bytes:
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members) + "}").encode()


@st.composite
def bodies(draw, op: str | None) -> bytes:
    """Request bodies: random bytes, random JSON, objects with the op's members set to anything,
    or a valid request for the op with at most one member corrupted."""
    known_op = op in SERVICE.operation_names
    members = member_strategies(op) if known_op else {}
    choice = percent(draw)
    if choice < 5:
        return draw(st.binary(max_size=300))
    if choice < 10:
        return json.dumps(draw(json_values)).encode()
    if choice < 13:
        return draw(st.sampled_from([b"", b" ", b"{}", b"null", b"[]", b"\xff\xfe{", b"{\"a\":", b"\x00" * 10]))
    if choice >= 45 and known_op:
        doc = dict(draw(valid_members(op)))
        corrupt = percent(draw)  # < 40: as is; < 60: a member dropped; else one member is junk
        if 40 <= corrupt < 60 and doc:
            del doc[draw(st.sampled_from(sorted(doc)))]
        parts = [(k, json.dumps(v)) for k, v in doc.items()]
        if corrupt >= 60 and members:
            name = draw(st.sampled_from(sorted(members)))
            parts = [p for p in parts if p[0] != name]
            junk = draw(st.one_of(st.sampled_from(RAW_FRAGMENTS), json_values.map(json.dumps),
                                  members[name].map(json.dumps)))
            parts.append((name, junk))
        return _object_text(parts)
    # An object with (some of) the op's real member names, values of any type.
    names = list(members) or ["KeyId"]
    chosen = draw(st.lists(st.sampled_from(names), max_size=len(names) + 1, unique=choice > 15))
    parts: list[tuple[str, str]] = []
    for name in chosen:
        how = percent(draw)
        if how < 10:
            parts.append((name, draw(st.sampled_from(RAW_FRAGMENTS))))
        elif how < 20 or name not in members:
            parts.append((name, json.dumps(draw(json_values))))
        else:
            parts.append((name, json.dumps(draw(members[name]))))
    if percent(draw) < 20:
        parts.append((draw(short_text), json.dumps(draw(json_values))))  # an unknown member
    return _object_text(parts)


GARBAGE_TARGETS = [
    "", "TrentService.", "TrentService", "trentservice.CreateKey", "TrentService.createKey", "TrentService.Nope",
    "TrentService.CreateKey ", " TrentService.CreateKey", "TrentService.TrentService.CreateKey",
    "KmsIacAdmin.AdvanceClock", "KmsIacAdmin.GetClock", "KmsIacAdmin.", "AWSKMS.CreateKey", "TrentService.__init__",
    "TrentService.../../x", "TrentService.handle", "TrentService.DescribeKey\x00",
]
GARBAGE_AUTH = [
    "", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256 Credential=", "Bearer abc", "AWS AKID:sig",
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kms/aws4_request",  # no SignedHeaders/Signature
    "AWS4-HMAC-SHA256 Credential=AKID/2026/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=x",
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/a:b:c/kms/aws4_request, SignedHeaders=host, Signature=x",
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/zz-\xe9/kms/aws4_request, SignedHeaders=host, Signature=x",
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x",
]
latin1_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=200)


@st.composite
def auth_headers(draw, region: str) -> str | None:
    n = percent(draw)
    if n < 85:
        return sigv4(region)
    if n < 90:
        return sigv4(draw(st.sampled_from([FUZZ_REGION, STATE_REGION, "us-west-2"])), draw(alnum))
    if n < 97:
        return draw(st.one_of(st.sampled_from(GARBAGE_AUTH), latin1_text.map(str.strip)))
    return None


@dataclass
class FuzzRequest:
    target: str | None
    op: str | None
    auth: str | None
    body: bytes
    method: str

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"FuzzRequest({self.method} target={self.target!r} auth={self.auth!r} body={self.body[:2000]!r})"


@st.composite
def fuzz_requests(draw, ops: list[str], region: str = FUZZ_REGION, garbage: bool = True) -> FuzzRequest:
    pick = percent(draw)
    if pick < 4 and garbage:
        target = draw(st.one_of(st.sampled_from(GARBAGE_TARGETS), latin1_text.map(str.strip)))
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else draw(st.sampled_from(ops))
    elif pick < 7 and garbage:
        target, op = None, draw(st.sampled_from(ops))
    else:
        op = draw(st.sampled_from(ops))
        target = TARGET_PREFIX + op
    method = "POST" if percent(draw) >= 3 else draw(st.sampled_from(["GET", "PUT", "DELETE", "OPTIONS", "PATCH"]))
    return FuzzRequest(target, op, draw(auth_headers(region)), draw(bodies(op)), method)


# -- checks ---------------------------------------------------------------------------------


def check_response(req: FuzzRequest, status: int, data: bytes) -> dict:
    assert status < 500, (status, data[:500])
    assert not (b"Traceback" in data and b"Traceback" not in req.body), data[:2000]
    doc = json.loads(data)  # always JSON, errors included
    assert isinstance(doc, dict), doc
    if status != 200:
        assert isinstance(doc.get("__type"), str) and doc["__type"], (status, data[:500])
        assert "message" not in doc or doc["message"] is None or isinstance(doc["message"], str)
    return doc


def _paged(s: Served, op: str, region: str, items: str, **params) -> list:
    out: list = []
    marker = None
    while True:
        doc = s.ok(op, region, **params, **({"Marker": marker} if marker else {}))
        out.extend(doc[items])
        if not doc.get("Truncated"):
            return out
        marker = doc["NextMarker"]


def api_snapshot(s: Served, region: str) -> dict:
    """The store as the API shows it, in ``region``."""
    keys = sorted(k["KeyId"] for k in _paged(s, "ListKeys", region, "Keys", Limit=1000))
    snap: dict = {"keys": keys, "aliases": sorted(json.dumps(a, sort_keys=True) for a in
                                                    _paged(s, "ListAliases", region, "Aliases", Limit=100))}
    for kid in keys:
        per_key = {}
        for op in ("DescribeKey", "GetKeyPolicy", "ListResourceTags", "GetKeyRotationStatus", "ListKeyRotations"):
            status, doc = s.call(op, region, KeyId=kid)
            per_key[op] = (status, doc if status == 200 else doc.get("__type"))
        snap[kid] = per_key
    return snap


def db_snapshot(db: Path) -> dict:
    """Every row of every table (all regions), less the usage columns a background flush updates."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        out = {}
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for t in tables:
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({t})") if not r[1].startswith("last_used_")]
            out[t] = sorted(conn.execute(f"SELECT {', '.join(cols)} FROM {t}").fetchall(), key=repr)
        return out
    finally:
        conn.close()


def settled_snapshot(s: Served, region: str, db: Path) -> tuple[dict, dict]:
    """(API view, database) once the backend's short-lived interim states have ended: a replica
    ``Creating``, keys ``Updating``, an on-demand rotation in progress (GetKeyRotationStatus's
    OnDemandRotationStartDate). They end a few seconds later on the backend's clock, at the
    next request, whatever that request is: not a change a refused request may be blamed for."""
    deadline = time.monotonic() + 60
    while True:
        api, rows = api_snapshot(s, region), db_snapshot(db)
        in_progress = any("OnDemandRotationStartDate" in json.dumps(v.get("GetKeyRotationStatus", ""))
                          for v in api.values() if isinstance(v, dict))
        if not rows.get("key_transitions") and not in_progress:
            return api, rows
        assert time.monotonic() < deadline, "interim key states never ended"
        time.sleep(0.2)


COMMON = dict(
    deadline=None,
    database=None,  # no .hypothesis directory in the repo
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example, HealthCheck.filter_too_much],
)


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=500, **COMMON)
@given(reqs=st.lists(fuzz_requests(OPERATIONS), min_size=1, max_size=3))
def test_any_request_gets_a_json_answer_never_a_5xx(served: Served, reqs: list[FuzzRequest]) -> None:
    for req in reqs:
        status, data = served.request(req.target, req.body, req.auth, req.method)
        doc = check_response(req, status, data)
        event(f"{status} {doc.get('__type', '')}")
    assert served.alive()


@settings(max_examples=150, **COMMON)
@given(reqs=st.lists(
    st.one_of(*[fuzz_requests(IMPLEMENTED_MUTATING, STATE_REGION)] * 3, fuzz_requests(MUTATING, STATE_REGION)),
    min_size=1, max_size=3))
def test_refused_mutations_change_nothing(served: Served, reqs: list[FuzzRequest]) -> None:
    db = served.srv.data_dir / "kms.sqlite3"
    before = settled_snapshot(served, STATE_REGION, db)
    for req in reqs:
        status, data = served.request(req.target, req.body, req.auth, req.method)
        doc = check_response(req, status, data)
        if status == 200:
            event("accepted")
            before = settled_snapshot(served, STATE_REGION, db)
            continue
        event(f"refused {doc['__type']}")
        after = (api_snapshot(served, STATE_REGION), db_snapshot(db))
        assert after[0] == before[0], f"refused {req!r} changed the store (API view)"
        assert after[1] == before[1], f"refused {req!r} changed the store (database)"
        before = after
    assert served.alive()


# -- deterministic cases --------------------------------------------------------------------


def _ok_after(served: Served) -> None:
    status, data = served.request(TARGET_PREFIX + "ListKeys", b"{}", sigv4())
    assert status == 200, data
    assert served.alive()


def _complete_responses(raw: bytes) -> int:
    """How many whole HTTP responses (headers and Content-Length body) ``raw`` holds."""
    count, pos = 0, 0
    while True:
        end = raw.find(b"\r\n\r\n", pos)
        if end < 0:
            return count
        length = 0
        for line in raw[pos:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if len(raw) < end + 4 + length:
            return count
        count, pos = count + 1, end + 4 + length


def _raw_exchange(served: Served, payload: bytes, *, responses: int = 1, timeout: float = 60.0,
                  shut_write: bool = False) -> bytes:
    """Send raw bytes; read until ``responses`` whole responses arrived or the server closed.

    ``timeout`` only bounds a server that does neither (a hang), so a slow machine waits
    for the answer instead of mistaking a late one for none."""
    with socket.create_connection((served.host, served.port), timeout=timeout) as sock:
        sock.sendall(payload)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        chunks: list[bytes] = []
        try:
            while _complete_responses(b"".join(chunks)) < responses:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError):
            pass
        return b"".join(chunks)


def _check_raw_error(raw: bytes) -> None:
    """A 400 with a JSON error body, or nothing at all (connection closed)."""
    if not raw:
        return
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), raw[:300]
    assert b"Traceback" not in raw
    assert isinstance(json.loads(body)["__type"], str), raw[:300]


def test_two_mebibyte_body_is_refused_with_json_error(served: Served) -> None:
    body = b'{"KeyId": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    status, data = served.request(TARGET_PREFIX + "DescribeKey", body, sigv4())
    assert status == 400
    assert json.loads(data)["__type"] == "ValidationException"
    _ok_after(served)


def test_body_just_over_the_limit_chunked_is_refused(served: Served) -> None:
    chunk = b"x" * 65536
    n = (1024 * 1024) // len(chunk) + 2
    payload = (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nTransfer-Encoding: chunked\r\n"
        b"Authorization: " + sigv4().encode() + b"\r\n\r\n"
        + b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(n)) + b"0\r\n\r\n"
    )
    raw = _raw_exchange(served, payload)
    assert raw.startswith(b"HTTP/1.1 400"), raw[:300]
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["__type"] == "ValidationException"
    _ok_after(served)


MALFORMED = [
    b"THIS IS NOT HTTP\r\n\r\n",
    b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
    b"POST / HTTP/9.9\r\n\r\n",
    b"POST  HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    b"POST /" + b"a" * 200_000 + b" HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\n\x00: y\r\n\r\n",
]


@pytest.mark.parametrize("payload", MALFORMED, ids=[repr(p[:30]) for p in MALFORMED])
def test_malformed_http_gets_400_or_close_and_server_carries_on(served: Served, payload: bytes) -> None:
    raw = _raw_exchange(served, payload)
    # One request, at most one answer (some of these are valid HTTP that is merely refused, and the
    # connection stays open): a 400 with a JSON error body, or a closed connection.
    assert raw.count(b"HTTP/1.1 ") <= 1, f"several responses to one request: {raw[:800]!r}"
    _check_raw_error(raw)
    _ok_after(served)


def test_truncated_body_then_close_server_survives(served: Served) -> None:
    for _ in range(20):
        with socket.create_connection((served.host, served.port), timeout=5) as sock:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.CreateKey\r\n"
                b"Authorization: " + sigv4().encode() + b"\r\nContent-Length: 100000\r\n\r\n{\"Descr"
            )
    # Half-close: the server sees EOF mid-body and must not wait forever or crash.
    raw = _raw_exchange(
        served,
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 50\r\n\r\n{}",
        shut_write=True,
    )
    assert b"Traceback" not in raw
    # A connection that just opens and closes, and one that sends half a header.
    socket.create_connection((served.host, served.port), timeout=5).close()
    with socket.create_connection((served.host, served.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nX-Amz-Tar")
    _ok_after(served)


def test_pipelined_requests_each_get_their_answer(served: Served) -> None:
    one = (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nAuthorization: "
        + sigv4().encode() + b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    bad = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.Nope\r\nContent-Length: 2\r\n\r\n{}"
    last = one.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    raw = _raw_exchange(served, one + bad + one + last, responses=4)
    statuses = [r[:3] for r in raw.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [b"200", b"400", b"200", b"200"], raw[:1000]


def test_a_malformed_request_is_answered_after_the_requests_before_it(served: Served) -> None:
    """Requests read in one turn are answered together; a parse error read with them keeps its
    place: the requests before it get their answers, then the 400 and the close."""
    one = (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nAuthorization: "
        + sigv4().encode() + b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    raw = _raw_exchange(served, one + one + b"NOT-A-METHOD / HTTP/1.1\r\n\r\n" + one, responses=4)
    statuses = [r[:3] for r in raw.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [b"200", b"200", b"400"], raw[:1000]
    assert b"Connection: close" in raw.split(b"HTTP/1.1 ")[3]
    _ok_after(served)


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"Limit": ' + b"9" * 5000 + b"}",
    b'{"KeyId": "x", "KeyId": 5}',
    b'\xef\xbb\xbf{}',
    b'{"a": "\xff"}',
])
def test_hostile_json_is_a_4xx(served: Served, body: bytes) -> None:
    status, data = served.request(TARGET_PREFIX + "ListKeys", body, sigv4())
    assert 200 <= status < 500, data
    if status != 200:
        assert isinstance(json.loads(data)["__type"], str)
    _ok_after(served)


@pytest.mark.parametrize("op,params", [
    ("CreateKey", {"Description": "\ud800"}),
    ("CreateKey", {"Tags": [{"TagKey": "\udfff", "TagValue": "v"}]}),
    ("TagResource", {"KeyId": "@key", "Tags": [{"TagKey": "k", "TagValue": "a\ud83d"}]}),
    ("UpdateKeyDescription", {"KeyId": "@key", "Description": "\udc00"}),
    ("Encrypt", {"KeyId": "@key", "Plaintext": "YQ==", "EncryptionContext": {"a": "\ud800"}}),
    ("Encrypt", {"KeyId": "@key", "Plaintext": "YQ==", "EncryptionContext": {"\ud800": "a"}}),
    ("GenerateDataKey", {"KeyId": "@key", "KeySpec": "AES_256", "EncryptionContext": {"a": "\ud800"}}),
    ("Decrypt", {"CiphertextBlob": "@blob", "EncryptionContext": {"a": "\ud800"}}),
])
def test_lone_surrogates_are_a_4xx(served: Served, op: str, params: dict) -> None:
    """JSON may escape lone UTF-16 surrogates (\\ud800); they cannot be stored or encoded as UTF-8."""
    key_id = KNOWN.key_ids[0]
    params = json.loads(json.dumps(params).replace('"@key"', json.dumps(key_id))
                        .replace('"@blob"', json.dumps(KNOWN.ciphertexts[0])))
    before = db_snapshot(served.srv.data_dir / "kms.sqlite3")
    status, data = served.request(TARGET_PREFIX + op, json.dumps(params).encode(), sigv4())
    assert 400 <= status < 500, (status, data)
    assert isinstance(json.loads(data)["__type"], str)
    assert db_snapshot(served.srv.data_dir / "kms.sqlite3") == before
    _ok_after(served)


# -- key lifecycle sequences ----------------------------------------------------------------

LIFECYCLE_REGION = "ap-south-1"  # fresh keys per example, away from the other properties' regions
LIFECYCLE_OPS = ["ScheduleKeyDeletion", "CancelKeyDeletion", "EnableKey", "DisableKey", "EnableKeyRotation",
                 "DisableKeyRotation", "RotateKeyOnDemand"]
USE_OPS = ["Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "DescribeKey",
           "GetKeyRotationStatus", "ListKeyRotations", "GetKeyPolicy", "PutKeyPolicy", "TagResource", "UntagResource",
           "ListResourceTags", "UpdateKeyDescription", "CreateAlias", "UpdateAlias", "DeleteAlias", "ListAliases",
           "GetKeyLastUsage", "ListKeyPolicies"]
KEY_KINDS = ["aws", "external", "multi", "managed"]
_example_counter = iter(range(10**9))


def _lifecycle_params(op: str, kind: str, ref: str, key_id: str, flag: bool, n: int, aliases: dict[str, str],
                      blobs: list[str]) -> dict:
    ctx = {"c": "1"}
    blob = blobs[-1] if blobs else KNOWN.ciphertexts[0]
    return {
        "ScheduleKeyDeletion": {"KeyId": ref, "PendingWindowInDays": 7},
        "EnableKeyRotation": {"KeyId": ref, **({"RotationPeriodInDays": 90} if flag else {})},
        "ListKeyRotations": {"KeyId": ref, **({"IncludeKeyMaterial": "ALL_KEY_MATERIAL"} if flag else {})},
        "Encrypt": {"KeyId": ref, "Plaintext": base64.b64encode(b"hello").decode(), "EncryptionContext": ctx},
        "Decrypt": {"CiphertextBlob": blob, "EncryptionContext": ctx, **({"KeyId": ref} if flag else {})},
        "ReEncrypt": {"CiphertextBlob": blob, "SourceEncryptionContext": ctx, "DestinationKeyId": ref},
        "GenerateDataKey": {"KeyId": ref, "KeySpec": "AES_256", "EncryptionContext": ctx},
        "GenerateDataKeyWithoutPlaintext": {"KeyId": ref, "NumberOfBytes": 32, "EncryptionContext": ctx},
        "PutKeyPolicy": {"KeyId": ref, "Policy": VALID_POLICY},
        "TagResource": {"KeyId": ref, "Tags": [{"TagKey": "t", "TagValue": "v"}]},
        "UntagResource": {"KeyId": ref, "TagKeys": ["t"]},
        "UpdateKeyDescription": {"KeyId": ref, "Description": "d"},
        "CreateAlias": {"AliasName": f"alias/lc-{n}-{kind}-{len(blobs)}-{flag}", "TargetKeyId": key_id},
        "UpdateAlias": {"AliasName": aliases["aws"], "TargetKeyId": key_id},
        "DeleteAlias": {"AliasName": aliases.get(kind, "alias/aws/ebs")},
        "ListAliases": {"KeyId": key_id},
        "GetKeyLastUsage": {"KeyId": key_id},
    }.get(op, {"KeyId": ref})


@st.composite
def lifecycle_steps(draw) -> list[tuple[str, str, str, bool]]:
    """Steps that mostly work on one "focus" key, so that whole lifecycles of one key occur."""
    focus = draw(st.sampled_from(KEY_KINDS))
    steps = []
    for _ in range(draw(st.integers(1, 25))):
        op = draw(st.sampled_from(LIFECYCLE_OPS)) if percent(draw) < 55 else draw(st.sampled_from(USE_OPS))
        kind = focus if percent(draw) < 75 else draw(st.sampled_from(KEY_KINDS))
        steps.append((op, kind, draw(st.sampled_from(["id", "arn", "alias"])), draw(st.booleans())))
    return steps


@settings(max_examples=300, **COMMON)
@given(steps=lifecycle_steps())
def test_key_lifecycle_sequences_never_5xx(served: Served, steps: list[tuple[str, str, str, bool]]) -> None:
    """Valid requests in any order, on keys of every kind (including EXTERNAL keys that never got
    material, and AWS managed keys), are answered, never with an internal error."""
    n = next(_example_counter)
    region = LIFECYCLE_REGION
    ids = {
        "aws": served.ok("CreateKey", region)["KeyMetadata"]["KeyId"],
        "external": served.ok("CreateKey", region, Origin="EXTERNAL")["KeyMetadata"]["KeyId"],
        "multi": served.ok("CreateKey", region, MultiRegion=True)["KeyMetadata"]["KeyId"],
        "managed": served.ok("DescribeKey", region, KeyId="alias/aws/ebs")["KeyMetadata"]["KeyId"],
    }
    aliases = {"managed": "alias/aws/ebs"}
    for kind in ("aws", "external", "multi"):
        aliases[kind] = f"alias/lc-{n}-{kind}"
        served.ok("CreateAlias", region, AliasName=aliases[kind], TargetKeyId=ids[kind])
    blobs: list[str] = []
    for op, kind, how, flag in steps:
        key_id = ids[kind]
        ref = {"id": key_id, "arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}", "alias": aliases[kind]}[how]
        params = _lifecycle_params(op, kind, ref, key_id, flag, n, aliases, blobs)
        body = json.dumps(params).encode()
        status, data = served.request(TARGET_PREFIX + op, body, sigv4(region))
        doc = check_response(FuzzRequest(TARGET_PREFIX + op, op, sigv4(region), body, "POST"), status, data)
        event(f"{op} {status} {doc.get('__type', '')}")
        if status == 200 and "CiphertextBlob" in doc:
            blobs.append(doc["CiphertextBlob"])


def test_cancelled_deletion_of_external_key_without_material_stays_unusable(served: Served) -> None:
    """An EXTERNAL key that never had material goes back to PendingImport when its deletion is
    cancelled (as in AWS); it must never become Enabled with nothing to encrypt with."""
    region = LIFECYCLE_REGION
    kid = served.ok("CreateKey", region, Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    served.ok("ScheduleKeyDeletion", region, KeyId=kid, PendingWindowInDays=7)
    served.ok("CancelKeyDeletion", region, KeyId=kid)
    assert served.ok("DescribeKey", region, KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingImport"
    served.call("EnableKey", region, KeyId=kid)
    for op, params in [("Encrypt", {"Plaintext": "YQ=="}), ("GenerateDataKey", {"KeySpec": "AES_256"}),
                       ("GenerateDataKeyWithoutPlaintext", {"KeySpec": "AES_256"})]:
        status, doc = served.call(op, region, KeyId=kid, **params)
        assert status == 400 and doc["__type"] == "KMSInvalidStateException", (op, status, doc)


def test_admin_clock_refuses_absurd_values(tmp_path) -> None:
    """``--clock-control``'s AdvanceClock must refuse non-finite or out-of-range times: after
    ``Seconds=1e300`` every later request used to fail (its audit timestamp overflowed)."""
    with ServerProcess(tmp_path / "clock-data", "--clock-control") as srv:
        host, port = srv.url.rsplit("/", 1)[-1].split(":")
        s = Served(srv, host, int(port), [])
        for seconds in (b"1e300", b"-1e300", b"1e20", b'"nan"', b'"inf"', b'"-inf"'):
            status, data = s.request("KmsIacAdmin.AdvanceClock", b'{"Seconds": ' + seconds + b"}")
            assert status == 400 and isinstance(json.loads(data)["__type"], str), (seconds, status, data)
            status, data = s.request(TARGET_PREFIX + "ListKeys", b"{}", sigv4())
            assert status == 200, (seconds, status, data)
        status, data = s.request("KmsIacAdmin.AdvanceClock", b'{"Seconds": 86400}')
        assert status == 200, data
        assert s.request(TARGET_PREFIX + "CreateKey", b"{}", sigv4())[0] == 200
        if s.conn is not None:
            s.conn.close()
