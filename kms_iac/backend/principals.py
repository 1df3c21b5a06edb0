"""The principals file (``kms-iac local serve --principals FILE``): who may call, with which keys.

Format (YAML or JSON; see design.md "Principals file")::

    accounts:
      "111122223333":
        principals:
          - arn: arn:aws:iam::111122223333:root
            access_key_id: AKIAEXAMPLEROOT00001
            secret_access_key: example-secret-1
            session_token: optional; when set, requests must carry it as X-Amz-Security-Token
            policies: [ ...identity-based IAM policy documents... ]

Validation is strict: every problem is a :class:`PrincipalsError` naming the file and the
field (``accounts.111122223333.principals[1].arn``), so a typo never silently becomes an
unauthenticated or over-privileged caller.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

ACCOUNT_RE = re.compile(r"^\d{12}$")
ACCESS_KEY_RE = re.compile(r"^[\w]{16,128}$")  # IAM's AccessKeyId: [\w]+, 16..128 characters
_PARTITIONS = "aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc"
_NAME = r"[\w+=,.@-]{1,64}"
_PATH = r"(?:/|/[\x21-\x7e]{0,510}/)"  # IAM path: "/" or "/a/b/"
ARN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^arn:(?:{_PARTITIONS}):iam::(\d{{12}}):root$"), "Root"),
    (re.compile(rf"^arn:(?:{_PARTITIONS}):iam::(\d{{12}}):user{_PATH}{_NAME}$"), "IAMUser"),
    (re.compile(rf"^arn:(?:{_PARTITIONS}):iam::(\d{{12}}):role{_PATH}{_NAME}$"), "AssumedRole"),
    (re.compile(rf"^arn:(?:{_PARTITIONS}):sts::(\d{{12}}):assumed-role/{_NAME}/[\w+=,.@-]{{2,64}}$"), "AssumedRole"),
    (re.compile(rf"^arn:(?:{_PARTITIONS}):sts::(\d{{12}}):federated-user/[\w+=,.@-]{{2,32}}$"), "FederatedUser"),
)
ARN_FORMS = ("arn:aws:iam::ACCOUNT:root", "arn:aws:iam::ACCOUNT:user/NAME", "arn:aws:iam::ACCOUNT:role/NAME",
             "arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION", "arn:aws:sts::ACCOUNT:federated-user/NAME")

_PRINCIPAL_FIELDS = {"arn", "access_key_id", "secret_access_key", "session_token", "policies"}
_STATEMENT_FIELDS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}


class PrincipalsError(ValueError):
    """An invalid principals file; the message names the file and the field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: {field}: {problem}" if field else f"{source}: {problem}")


@dataclass(frozen=True)
class PrincipalEntry:
    """One access key of one principal."""

    arn: str
    account: str
    access_key_id: str
    secret: str
    session_token: str | None = None
    policies: tuple[dict, ...] = ()
    principal_type: str = "Root"  # CloudTrail userIdentity.type: Root, IAMUser, AssumedRole, FederatedUser

    def __repr__(self) -> str:  # never print the secret or the token
        return f"PrincipalEntry(arn={self.arn!r}, access_key_id={self.access_key_id!r}, type={self.principal_type!r})"


class Directory:
    """The loaded principals: lookups by access key id and by ARN."""

    def __init__(self, entries: Iterable[PrincipalEntry] = ()) -> None:
        self.entries: tuple[PrincipalEntry, ...] = tuple(entries)
        self._by_key = {e.access_key_id: e for e in self.entries}
        self._by_arn: dict[str, PrincipalEntry] = {}
        for e in self.entries:
            self._by_arn.setdefault(e.arn, e)

    def by_access_key(self, access_key_id: str) -> PrincipalEntry | None:
        return self._by_key.get(access_key_id)

    def by_arn(self, arn: str) -> PrincipalEntry | None:
        """The first entry (access key) listed for this principal ARN."""
        return self._by_arn.get(arn)

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.account for e in self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Directory({len(self.entries)} access keys in accounts {', '.join(self.accounts)})"


def principal_type(arn: str) -> str | None:
    """CloudTrail's userIdentity.type for a principal ARN, or None if the ARN is not a caller ARN."""
    for pattern, kind in ARN_PATTERNS:
        if pattern.match(arn):
            return kind
    return None


def _arn_account(arn: str) -> str | None:
    for pattern, _kind in ARN_PATTERNS:
        m = pattern.match(arn)
        if m:
            return m.group(1)
    return None


def _check_policy(source: str, field: str, policy: Any) -> dict:
    if not isinstance(policy, Mapping):
        raise PrincipalsError(source, field, f"a policy must be a mapping (an IAM policy document), not {type(policy).__name__}")
    unknown = set(policy) - {"Version", "Id", "Statement"}
    if unknown:
        raise PrincipalsError(source, field, f"unknown policy element(s): {', '.join(sorted(map(str, unknown)))}")
    if "Version" in policy and policy["Version"] not in ("2012-10-17", "2008-10-17"):
        raise PrincipalsError(source, f"{field}.Version", f"must be \"2012-10-17\" or \"2008-10-17\", not {policy['Version']!r}")
    if "Statement" not in policy:
        raise PrincipalsError(source, field, "a policy needs a Statement")
    statements = policy["Statement"]
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PrincipalsError(source, f"{field}.Statement", "must be a statement or a non-empty list of statements")
    for i, st in enumerate(statements):
        sf = f"{field}.Statement[{i}]"
        if not isinstance(st, Mapping):
            raise PrincipalsError(source, sf, "a statement must be a mapping")
        if "Principal" in st or "NotPrincipal" in st:
            raise PrincipalsError(source, sf, "an identity policy has no Principal or NotPrincipal (IAM: "
                                              "\"Has prohibited field Principal\"); the principal is the one it is attached to")
        unknown = set(st) - _STATEMENT_FIELDS
        if unknown:
            raise PrincipalsError(source, sf, f"unknown statement element(s): {', '.join(sorted(map(str, unknown)))}")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise PrincipalsError(source, f"{sf}.Effect", f"must be \"Allow\" or \"Deny\", not {st.get('Effect')!r}")
        if ("Action" in st) == ("NotAction" in st):
            raise PrincipalsError(source, sf, "needs exactly one of Action or NotAction")
        if ("Resource" in st) == ("NotResource" in st):
            raise PrincipalsError(source, sf, "needs exactly one of Resource or NotResource")
        for elem in ("Action", "NotAction", "Resource", "NotResource"):
            if elem in st:
                value = st[elem]
                values = value if isinstance(value, list) else [value]
                if not values or not all(isinstance(v, str) and v for v in values):
                    raise PrincipalsError(source, f"{sf}.{elem}", "must be a string or a non-empty list of strings")
        if "Condition" in st and not isinstance(st["Condition"], Mapping):
            raise PrincipalsError(source, f"{sf}.Condition", "must be a mapping of operator to {key: value}")
    return json.loads(json.dumps(policy))  # a plain, JSON-shaped copy (YAML dates etc. would fail here)


def _check_string(source: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise PrincipalsError(source, field, "must be a non-empty string")
    return value


def parse_principals(doc: Any, source: str = "<principals>") -> Directory:
    """Validate a loaded principals document and build the :class:`Directory`."""
    if not isinstance(doc, Mapping):
        raise PrincipalsError(source, "", "the file must hold a mapping with an 'accounts' key")
    unknown = set(doc) - {"accounts"}
    if unknown:
        raise PrincipalsError(source, "", f"unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}")
    accounts = doc.get("accounts")
    if not isinstance(accounts, Mapping) or not accounts:
        raise PrincipalsError(source, "accounts", "must be a non-empty mapping of 12-digit account id to its principals")
    entries: list[PrincipalEntry] = []
    seen_keys: dict[str, str] = {}
    seen_arns: dict[str, tuple[str, tuple]] = {}
    for raw_account, body in accounts.items():
        account = str(raw_account)
        af = f"accounts.{account}"
        if isinstance(raw_account, bool) or not ACCOUNT_RE.match(account):
            raise PrincipalsError(source, af, "an account id is 12 digits, written as a quoted string (\"011122223333\")")
        if not isinstance(body, Mapping):
            raise PrincipalsError(source, af, "must be a mapping with a 'principals' list")
        unknown = set(body) - {"principals"}
        if unknown:
            raise PrincipalsError(source, af, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        principals = body.get("principals")
        if not isinstance(principals, list):
            raise PrincipalsError(source, f"{af}.principals", "must be a list")
        for i, p in enumerate(principals):
            pf = f"{af}.principals[{i}]"
            if not isinstance(p, Mapping):
                raise PrincipalsError(source, pf, "must be a mapping with arn, access_key_id and secret_access_key")
            unknown = set(p) - _PRINCIPAL_FIELDS
            if unknown:
                raise PrincipalsError(source, pf, f"unknown field(s): {', '.join(sorted(map(str, unknown)))} "
                                                  f"(allowed: {', '.join(sorted(_PRINCIPAL_FIELDS))})")
            for required in ("arn", "access_key_id", "secret_access_key"):
                if required not in p:
                    raise PrincipalsError(source, pf, f"missing required field '{required}'")
            arn = _check_string(source, f"{pf}.arn", p["arn"])
            kind = principal_type(arn)
            if kind is None:
                raise PrincipalsError(source, f"{pf}.arn", f"{arn!r} is not a principal ARN; expected one of: {', '.join(ARN_FORMS)}")
            arn_account = _arn_account(arn)
            if arn_account != account:
                raise PrincipalsError(source, f"{pf}.arn", f"{arn!r} is in account {arn_account}, but is listed under account {account}")
            akid = p["access_key_id"]
            if not isinstance(akid, str) or not ACCESS_KEY_RE.match(akid):
                raise PrincipalsError(source, f"{pf}.access_key_id",
                                      f"{akid!r} is not an access key id (16 to 128 letters, digits or underscores)")
            if akid in seen_keys:
                raise PrincipalsError(source, f"{pf}.access_key_id", f"{akid} is already used by {seen_keys[akid]}")
            secret = _check_string(source, f"{pf}.secret_access_key", p["secret_access_key"])
            token = p.get("session_token")
            if token is not None:
                token = _check_string(source, f"{pf}.session_token", token)
            raw_policies = p.get("policies", [])
            if raw_policies is None:
                raw_policies = []
            if not isinstance(raw_policies, list):
                raise PrincipalsError(source, f"{pf}.policies", "must be a list of IAM policy documents")
            policies = tuple(_check_policy(source, f"{pf}.policies[{j}]", pol) for j, pol in enumerate(raw_policies))
            if arn in seen_arns and seen_arns[arn][1] != policies:
                raise PrincipalsError(source, f"{pf}.policies",
                                      f"{arn} is also listed at {seen_arns[arn][0]} with different policies; "
                                      "a principal's access keys share one set of identity policies")
            seen_arns.setdefault(arn, (pf, policies))
            seen_keys[akid] = pf
            entries.append(PrincipalEntry(arn=arn, account=account, access_key_id=akid, secret=secret,
                                          session_token=token, policies=policies, principal_type=kind))
    if not entries:
        raise PrincipalsError(source, "accounts", "lists no principals: no request could ever be authenticated")
    return Directory(entries)


def load_principals(path: Path | str) -> Directory:
    """Read and validate a principals file (``.json`` as JSON, anything else as YAML)."""
    p = Path(path)
    source = str(p)
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PrincipalsError(source, "", f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PrincipalsError(source, "", "not UTF-8 text (a binary file?)") from None
    try:
        doc = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PrincipalsError(source, "", f"not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                                          f"{' '.join(str(exc).split())}") from None
    return parse_principals(doc, source)


def as_directory(principals: "Directory | Path | str | Mapping") -> Directory:
    """A Directory from a Directory, a file path, or an already-loaded document."""
    if isinstance(principals, Directory):
        return principals
    if isinstance(principals, Mapping):
        return parse_principals(principals)
    return load_principals(principals)
