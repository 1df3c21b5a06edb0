"""Verifying AWS Signature Version 4 on incoming requests, against a principals file.

The expected signature is the one botocore's own signer computes (:class:`botocore.auth.SigV4Auth`:
its canonical path, query string, header canonicalisation, string to sign and signing-key
derivation), over exactly the headers the caller listed in ``SignedHeaders`` with the values
as received, and over the SHA-256 of the body actually received (never a client-supplied
``X-Amz-Content-SHA256``, so a changed body cannot keep a valid signature). KMS's usual
request (POST to "/", no query string) is checked by a C build (``_sigv4_native.c``)
or by this module's own code; anything else by botocore's signer itself. Tests hold the
three to the same answers.

Checks, in order, and the AWS answer to each failure (all HTTP 400 JSON with ``__type``):

1. no ``Authorization`` header: ``MissingAuthenticationTokenException`` "Missing Authentication Token";
2. a header that is not ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``, or no
   ``X-Amz-Date``/``Date``: ``IncompleteSignature`` naming every missing part;
3. a credential scope for another service, a malformed region or terminator, or a date other
   than the request date's: ``InvalidSignatureException``;
4. an access key id not in the principals file, or a session token missing/different from the one
   the principal is configured with (or sent when none is configured): ``UnrecognizedClientException``
   "The security token included in the request is invalid.";
5. a request date more than 5 minutes from the server's time: ``InvalidSignatureException``
   "Signature expired: ... is now earlier than ... (... - 5 min.)" (or "Signature not yet current:
   ... is still later than ... (... + 5 min.)");
6. a signature that differs: ``InvalidSignatureException`` "The request signature we calculated does
   not match the signature you provided. ...".

Test-only header: ``X-Kms-Iac-Via-Service: <service>.<region>.amazonaws.com`` sets the request's
``kms:ViaService`` (as if an AWS service had made the call on the principal's behalf), so key
policies with ``kms:ViaService`` conditions can be exercised locally. Like
``X-Kms-Iac-Source-Vpce`` it is trusted as sent: the local backend is a test double, not a
security boundary against its own callers' headers.
"""

from __future__ import annotations

import calendar
import hmac
from functools import lru_cache
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from hashlib import sha256
from typing import Any, Callable, Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from kms_iac.backend.clock import Clock
from kms_iac.backend.context import RequestContext
from kms_iac.backend.errors import (
    IncompleteSignature,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
    ValidationException,
)
from kms_iac.backend.principals import Directory, PrincipalEntry

try:  # the C build of expected_signature's common case (see _sigv4_native.c); optional at install
    from kms_iac.backend._sigv4_native import signature as _native_signature
except ImportError:  # not built here (no compiler or headers): Python computes every signature
    _native_signature = None

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "kms"
MAX_SKEW_SECONDS = 5 * 60
VIA_SERVICE_HEADER = "x-kms-iac-via-service"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_REGION_RE = re.compile(r"^[a-z0-9-]{1,32}$")
_AMZ_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")
_VIA_SERVICE_RE = re.compile(r"^[a-z0-9-]+\.[a-z0-9-]+\.amazonaws\.com$")

MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")

Authenticator = Callable[[RequestContext, dict, str, str, bytes], RequestContext]


class ParsedAuthorization:
    __slots__ = ("access_key_id", "date", "region", "service", "signed_headers", "signature", "raw")

    def __init__(self, access_key_id: str, date: str, region: str, service: str, signed_headers: list[str],
                 signature: str, raw: str) -> None:
        self.access_key_id = access_key_id
        self.date = date
        self.region = region
        self.service = service
        self.signed_headers = signed_headers
        self.signature = signature
        self.raw = raw


# The header as SDKs write it, for this service; a match is read as the general parser below
# reads it (every part present and well-formed, headers already lower-case, none empty).
_SDK_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([A-Za-z0-9_]+)/([0-9]{8})/([a-z0-9-]{1,32})/kms/aws4_request, ?"
    r"SignedHeaders=([a-z0-9-]+(?:;[a-z0-9-]+)*), ?Signature=([0-9a-f]+)")


def parse_authorization(headers: Mapping[str, str]) -> ParsedAuthorization:
    """The parts of a SigV4 ``Authorization`` header; AWS's errors for missing or malformed parts."""
    auth = headers.get("authorization")
    if not auth:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    has_date = bool(headers.get("x-amz-date") or headers.get("date"))
    sdk = _SDK_AUTHORIZATION.fullmatch(auth) if has_date else None
    if sdk is not None:
        akid, date, region, signed_headers, signature = sdk.groups()
        return ParsedAuthorization(akid, date, region, SERVICE, signed_headers.split(";"), signature, auth)
    algorithm, _, rest = auth.strip().partition(" ")
    params: dict[str, str] = {}
    if algorithm == ALGORITHM:
        for part in rest.split(","):
            part = part.strip()
            if not part:
                continue
            key, eq, value = part.partition("=")
            if not eq:
                raise IncompleteSignature(f"'{part}' not a valid key=value pair (missing equal-sign) in "
                                          f"Authorization header: '{auth}'.")
            params[key.strip()] = value.strip()
    missing = [f"Authorization header requires '{name}' parameter." for name in ("Credential", "Signature", "SignedHeaders")
               if not params.get(name)]
    if not has_date:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if missing:
        raise IncompleteSignature(" ".join(missing) + f" Authorization={auth}")
    credential = params["Credential"].split("/")
    if len(credential) != 5:
        raise IncompleteSignature(f"Credential must have exactly 5 slash-delimited elements, e.g. "
                                  f"keyid/date/region/service/term, got '{params['Credential']}'")
    akid, date, region, service, terminator = credential
    if terminator != "aws4_request":
        raise InvalidSignatureException(f"Credential should be scoped with a valid terminator: 'aws4_request', "
                                        f"not '{terminator}'.")
    if service != SERVICE:
        raise InvalidSignatureException(f"Credential should be scoped to correct service: '{SERVICE}'. ")
    if not _REGION_RE.match(region):
        raise InvalidSignatureException(f"Credential should be scoped to a valid region, not '{region}'. ")
    signed = [h.strip().lower() for h in params["SignedHeaders"].split(";") if h.strip()]
    return ParsedAuthorization(akid, date, region, service, signed, params["Signature"], auth)


def request_timestamp(headers: Mapping[str, str]) -> str:
    """The request's ISO-8601 basic timestamp, from X-Amz-Date or else the Date header."""
    amz = headers.get("x-amz-date")
    if amz:
        if not _AMZ_DATE_RE.match(amz):
            raise IncompleteSignature(f"Date must be in ISO-8601 'basic format'. Got '{amz}'. "
                                      "See http://en.wikipedia.org/wiki/ISO_8601")
        return amz
    raw = headers.get("date", "")
    try:
        dt = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        raise IncompleteSignature(f"Date must be in ISO-8601 'basic format'. Got '{raw}'. "
                                  "See http://en.wikipedia.org/wiki/ISO_8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime(SIGV4_TIMESTAMP)


@lru_cache(maxsize=4096)
def _epoch(stamp: str) -> float:
    try:  # YYYYMMDDTHHMMSSZ, parsed by hand: strptime is a hot spot at thousands of requests a second
        if len(stamp) != 16 or stamp[8] != "T" or stamp[15] != "Z":
            raise ValueError(stamp)
        fields = (int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]), int(stamp[11:13]), int(stamp[13:15]))
        datetime(*fields)  # range check
        return float(calendar.timegm((*fields, 0, 0, 0)))
    except ValueError:
        raise IncompleteSignature(f"Date must be in ISO-8601 'basic format'. Got '{stamp}'. "
                                  "See http://en.wikipedia.org/wiki/ISO_8601") from None


def _fmt(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime(SIGV4_TIMESTAMP)


def check_skew(stamp: str, now: float) -> None:
    """AWS's 5-minute window, with AWS's messages."""
    signed_at = _epoch(stamp)
    if signed_at < now - MAX_SKEW_SECONDS:
        raise InvalidSignatureException(
            f"Signature expired: {stamp} is now earlier than {_fmt(now - MAX_SKEW_SECONDS)} ({_fmt(now)} - 5 min.)")
    if signed_at > now + MAX_SKEW_SECONDS:
        raise InvalidSignatureException(
            f"Signature not yet current: {stamp} is still later than {_fmt(now + MAX_SKEW_SECONDS)} ({_fmt(now)} + 5 min.)")


@lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key: the same for a secret, day, Region and service, so derived once."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), sha256).digest()
    return key


@lru_cache(maxsize=1024)
def _signer(secret: str, date: str, region: str, service: str) -> tuple[Any, Any]:
    """HMAC-SHA256 under the derived key, as its two precomputed hash states (RFC 2104's
    H(K xor ipad) and H(K xor opad)): a request's HMAC is then two hash copies and updates,
    where OpenSSL 3's one-shot HMAC looks the algorithm up again on every call."""
    key = _signing_key(secret, date, region, service).ljust(64, b"\0")  # SHA-256's block: 64 bytes
    return sha256(bytes(b ^ 0x36 for b in key)), sha256(bytes(b ^ 0x5C for b in key))


def _hmac_hex(secret: str, auth: "ParsedAuthorization", message: bytes) -> str:
    inner_state, outer_state = _signer(secret, auth.date, auth.region, auth.service)
    inner = inner_state.copy()
    inner.update(message)
    outer = outer_state.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def _canonical_header_value(value: str) -> str:
    return " ".join(value.split())


def _needs_trim(value: str) -> bool:
    """Whether SigV4's header value canonicalisation (trim, squeeze whitespace) changes ``value``."""
    return not value.isprintable() or "  " in value or value[:1] == " " or value[-1:] == " "


def expected_signature(secret: str, auth: ParsedAuthorization, timestamp: str, headers: Mapping[str, str],
                       method: str, path: str, body: bytes, query: str = "") -> str:
    """The SigV4 signature of this request with this secret.

    The common case (KMS's JSON protocol: POST to "/", no query string) is computed
    directly with a cached signing key, in C where the extension is built and the header
    values are printable ASCII; anything else goes through botocore's own signer. A test
    cross-checks the three on many requests.
    """
    if query or (path or "/") != "/":
        return botocore_signature(secret, auth, timestamp, headers, method, path, body, query)
    if _native_signature is not None and type(headers) is dict and type(auth.signed_headers) is list:
        found = _native_signature(method, auth.signed_headers, headers, body, timestamp,
                                  f"{auth.date}/{auth.region}/{auth.service}/aws4_request",
                                  _signing_key(secret, auth.date, auth.region, auth.service))
        if found is not None:
            return found
    return python_signature(secret, auth, timestamp, headers, method, body)


def python_signature(secret: str, auth: ParsedAuthorization, timestamp: str, headers: Mapping[str, str],
                     method: str, body: bytes) -> str:
    """:func:`expected_signature` of a POST to "/" with no query string, in Python (the reference
    for the C build, and the way for values it leaves to Python)."""
    lines = [method.upper(), "/", ""]
    for name in auth.signed_headers:
        value = headers.get(name, "")
        lines.append(f"{name}:{_canonical_header_value(value) if _needs_trim(value) else value}")
    lines += ["", ";".join(auth.signed_headers),
              sha256(body).hexdigest()]  # always the body received: a client's X-Amz-Content-SHA256 is not trusted
    canonical = "\n".join(lines)
    string_to_sign = (f"AWS4-HMAC-SHA256\n{timestamp}\n{auth.date}/{auth.region}/{auth.service}/aws4_request\n"
                      f"{sha256(canonical.encode()).hexdigest()}")
    return _hmac_hex(secret, auth, string_to_sign.encode())


def botocore_signature(secret: str, auth: ParsedAuthorization, timestamp: str, headers: Mapping[str, str],
                       method: str, path: str, body: bytes, query: str = "") -> str:
    """The signature botocore's SigV4 signer computes for this request with this secret."""
    signer = SigV4Auth(Credentials(auth.access_key_id, secret), auth.service, auth.region)
    host = headers.get("host", "localhost")
    url = f"http://{host}{path or '/'}" + (f"?{query}" if query else "")
    header_map = HTTPHeaders()
    for name in auth.signed_headers:
        header_map[name] = headers.get(name, "")
    request = AWSRequest(method=method, url=url, headers=dict(header_map.items()), data=body)
    request.context["timestamp"] = timestamp
    canonical = "\n".join([
        method.upper(),
        signer._normalize_url_path(path or "/"),
        signer.canonical_query_string(request),
        signer.canonical_headers(header_map) + "\n",
        ";".join(auth.signed_headers),
        sha256(body).hexdigest(),  # always the body received: a client's X-Amz-Content-SHA256 is not trusted
    ])
    string_to_sign = signer.string_to_sign(request, canonical)
    return signer.signature(string_to_sign, request)


class VerifiedSignatures:
    """Requests whose signature was verified, so an identical one is not verified again.

    SigV4 has no nonce: AWS accepts the same signed request again and again within its 5-minute
    window, and the verdict on it is a function of the secret and what was signed. A request
    whose Authorization header, signed header values, date headers, session token, method, path,
    query and body all equal a verified one's has that one's signer; its 5-minute window is still
    checked against the clock every time. Real SDK clients sign each request afresh (new date,
    new body), so they mostly miss: this spares replays, not verification in general. So that
    they pay next to nothing for it, a request is remembered only once its Authorization header
    comes a second time (a set of header strings, seen once). Bounded (entries, body size), per
    principals directory.
    """

    MAX_BODY = 16 * 1024
    _DATES = ("x-amz-date", "date", "x-amz-security-token")  # read whether signed or not

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        # Authorization header -> (the header names an identical request has, what it had
        # (method, path, query, body, then those headers' values), the verdict, its signing time)
        self._entries: dict[str, tuple[tuple[str, ...], tuple, tuple[PrincipalEntry, ParsedAuthorization, str], float]] = {}
        self._seen: set[str] = set()

    def get(self, headers: Mapping[str, str], method: str, path: str, query: str,
            body: bytes) -> tuple[tuple[PrincipalEntry, ParsedAuthorization, str], float] | None:
        """(the verdict, its signing time in epoch seconds) for a request identical to a verified one."""
        hit = self._entries.get(headers.get("authorization") or "")
        if hit is None:
            return None
        names, signed, verified, signed_at = hit
        return (verified, signed_at) if (method, path, query, body, *map(headers.get, names)) == signed else None

    def put(self, headers: Mapping[str, str], method: str, path: str, query: str, body: bytes,
            verified: tuple[PrincipalEntry, ParsedAuthorization, str]) -> None:
        raw = verified[1].raw
        if raw not in self._seen:  # the first time: only noted
            if len(self._seen) >= 16 * self.capacity:
                self._seen.clear()
            self._seen.add(raw)
            return
        if len(body) > self.MAX_BODY:
            return
        if len(self._entries) >= self.capacity:
            self._entries.clear()  # (thread-safe, unlike evicting one by one)
        names = (*self._DATES, *verified[1].signed_headers)
        self._entries[raw] = (names, (method, path, query, body, *map(headers.get, names)), verified,
                              _epoch(verified[2]))


def verify(directory: Directory, headers: Mapping[str, str], method: str, path: str, body: bytes,
           now: float, query: str = "", verified: VerifiedSignatures | None = None,
           ) -> tuple[PrincipalEntry, ParsedAuthorization]:
    """The principal that validly signed this request (headers lower-cased); a KMSError otherwise.

    ``verified``: requests already verified (see :class:`VerifiedSignatures`)."""
    if verified is not None:
        hit = verified.get(headers, method, path, query, body)
        if hit is not None:
            (entry, auth, timestamp), signed_at = hit
            if not now - MAX_SKEW_SECONDS <= signed_at <= now + MAX_SKEW_SECONDS:
                check_skew(timestamp, now)  # AWS's refusal, worded from the timestamp
            return entry, auth
    auth = parse_authorization(headers)
    timestamp = request_timestamp(headers)
    if auth.date != timestamp[:8]:
        raise InvalidSignatureException(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.date}' != '{timestamp[:8]}', from '{timestamp}'.")
    entry = directory.by_access_key(auth.access_key_id)
    if entry is None:
        raise UnrecognizedClientException(MSG_BAD_TOKEN)
    token = headers.get("x-amz-security-token")
    if entry.session_token is not None:
        if token is None or not hmac.compare_digest(token.encode(), entry.session_token.encode()):
            raise UnrecognizedClientException(MSG_BAD_TOKEN)
        if "x-amz-security-token" not in auth.signed_headers:
            raise UnrecognizedClientException(MSG_BAD_TOKEN)
    elif token is not None:
        raise UnrecognizedClientException(MSG_BAD_TOKEN)
    if "host" not in auth.signed_headers:
        raise InvalidSignatureException("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    check_skew(timestamp, now)
    expected = expected_signature(entry.secret, auth, timestamp, headers, method, path, body, query)
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise InvalidSignatureException(MSG_MISMATCH)
    if verified is not None:
        verified.put(headers, method, path, query, body, (entry, auth, timestamp))
    return entry, auth


def make_authenticator(directory: Directory, clock: Clock | None = None) -> Authenticator:
    """``backend.authenticator``: verify the signature and fill the request context with the signer.

    ``clock`` is the clock signatures are checked against; give it wall-clock time (the default),
    not a backend clock that tests move forward by days, or every request would have "expired".
    """
    clock = clock or Clock()
    verified = VerifiedSignatures()

    def authenticate(ctx: RequestContext, headers: dict[str, str], method: str, path: str, body: bytes) -> RequestContext:
        query = ""
        if "?" in path:
            path, _, query = path.partition("?")
        entry, auth = verify(directory, headers, method, path, body, clock.now(), query, verified)
        ctx.account = entry.account
        ctx.region = auth.region
        ctx.principal_arn = entry.arn
        ctx.access_key_id = entry.access_key_id
        ctx.principal_type = entry.principal_type
        ctx.identity_policies = entry.policies
        via = headers.get(VIA_SERVICE_HEADER)
        if via:
            via = via.strip().lower()
            if not _VIA_SERVICE_RE.match(via):
                raise ValidationException(f"X-Kms-Iac-Via-Service must look like SERVICE.REGION.amazonaws.com "
                                          f"(e.g. ec2.us-east-1.amazonaws.com), not '{via}'.")
            ctx.via_service = via
        return ctx

    authenticate.directory = directory  # type: ignore[attr-defined]
    return authenticate


def attach_principals(backend, principals, clock: Clock | None = None) -> Directory:
    """Make ``backend`` verify signatures against ``principals`` (a Directory, a file path or a document)
    and authorize every operation as AWS KMS does."""
    from kms_iac.backend.principals import as_directory

    from kms_iac.backend.authorization import install

    directory = as_directory(principals)
    install(backend, make_authenticator(directory, clock))  # authentication and authorization go together
    return directory

