"""checkov's Terraform values, made into what kms-iac's Terraform adapter reads.

checkov hands a Terraform check the resource's attributes from HCL (or a plan) with every
value wrapped in a one-element list, and renders what it can of variables, locals and
references. What it cannot render it leaves as text: ``data.aws_iam_policy_document.k.json``,
``var.x``, ``aws_kms_key.k.arn``, sometimes still inside ``${...}``, sometimes inside a
longer string (``arn:aws:iam::data.aws_caller_identity.current.account_id:root``). A variable
without a value (no default, no tfvars) it renders as an empty value of its type, which
only its graph's rendering breadcrumbs reveal.

Here: values are unwrapped; the account, partition and Region data sources are filled in
(they mean "wherever this is applied", as ``AWS::AccountId`` does in CloudFormation, and are
given the configured account or the placeholder the same way); anything else unresolved is
reported so the check can treat it as unknown, never as a value. The resource graph (which
checkov gives checks as ``self.graph``) links a key to its aliases, its ``aws_kms_key_policy``
and grants, which are separate resources a per-resource check cannot otherwise see.

No checkov import here: plain data in, plain data out.
"""

from __future__ import annotations

import re
from typing import Any

# Data sources whose value is "the account/partition/Region this is applied in".
_KNOWN_DATA = (
    (re.compile(r"\$\{\s*data\.aws_caller_identity\.[\w-]+\.account_id\s*\}|data\.aws_caller_identity\.[\w-]+\.account_id"),
     "account"),
    (re.compile(r"\$\{\s*data\.aws_partition\.[\w-]+\.partition\s*\}|data\.aws_partition\.[\w-]+\.partition"), "partition"),
    (re.compile(r"\$\{\s*data\.aws_region\.[\w-]+\.(?:name|region)\s*\}|data\.aws_region\.[\w-]+\.(?:name|region)"),
     "region"),
)
# A reference checkov left unrendered, alone or inside a longer string.
_REFERENCE = re.compile(
    r"\$\{[^{}]*\}"
    r"|(?<![\w.-])(?:data\.[a-z][a-z0-9_]*\.[\w-]+|var\.[\w-]+|local\.[\w-]+|module\.[\w-]+\.[\w-]+"
    r"|each\.(?:key|value)|count\.index|aws_[a-z0-9_]+\.[\w-]+(?:\[[^\]]*\])?\.[a-z_]\w*)")
_KEY_REFERENCE = re.compile(
    r"^((?:module\.[\w-]+(?:\[[^\]]*\])?\.)*aws_kms_(?:key|external_key|replica_key|replica_external_key)\.[\w-]+)"
    r"(?:\[[^\]]*\])?(?:\.\w+)?$")
_INSTANCE_KEY = re.compile(r"\[[^\]]*\]")

LINKS = {"aws_kms_alias": "target_key_id", "aws_kms_key_policy": "key_id", "aws_kms_grant": "key_id"}
KEY_TYPES = ("aws_kms_key", "aws_kms_external_key", "aws_kms_replica_key", "aws_kms_replica_external_key")


def unwrap(value: Any) -> Any:
    """A value as a plan holds it: one-element lists unwrapped, checkov's own keys dropped."""
    if isinstance(value, list):
        if len(value) == 1:  # checkov's wrapper; a list attribute arrives as [[...]]
            inner = value[0]
            return [unwrap(v) for v in inner] if isinstance(inner, list) else unwrap(inner)
        return [unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()
                if not (isinstance(k, str) and (k.startswith("__") or k.endswith("_") and k != "_"))}
    return value


def fill_known(value: Any, account: str, region: str = "us-east-1") -> Any:
    """``value`` with the account/partition/Region data-source references filled in."""
    if isinstance(value, str):
        if "data.aws_" not in value:
            return value
        for pattern, what in _KNOWN_DATA:
            value = pattern.sub({"account": account, "partition": "aws", "region": region}[what], value)
        return value
    if isinstance(value, list):
        return [fill_known(v, account, region) for v in value]
    if isinstance(value, dict):
        return {k: fill_known(v, account, region) for k, v in value.items()}
    return value


def unresolved(value: Any) -> bool:
    """Does ``value`` (anywhere inside) still hold a reference checkov could not render?"""
    if isinstance(value, str):
        return bool(_REFERENCE.search(value))
    if isinstance(value, list):
        return any(unresolved(v) for v in value)
    if isinstance(value, dict):
        return any(unresolved(v) for v in value.values())
    return False


def key_reference(value: Any) -> str | None:
    """The key a reference names: ``aws_kms_key.k`` of ``aws_kms_key.k.key_id`` (or ``${...}``, ``[0]``)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    m = _KEY_REFERENCE.match(text)
    return m.group(1) if m else None


def without_instance_key(address: str) -> str:
    """``aws_kms_key.k`` of ``aws_kms_key.k[0]``; ``module.m.aws_kms_key.k`` of ``module.m["a"].aws_kms_key.k[0]``."""
    return _INSTANCE_KEY.sub("", address)


def module_prefix(address: str) -> str:
    """``module.a.module.b.`` of a resource address (instance keys dropped), or ""."""
    return "".join(re.findall(r"module\.[\w-]+\.", without_instance_key(address)))


def graph_nodes(graph: Any) -> list[dict]:
    """The attribute dicts of checkov's resource graph (rustworkx by default; networkx if so configured)."""
    if graph is None:
        return []
    if hasattr(graph, "node_indices"):  # rustworkx: each node's payload is (index, attributes)
        return [n[1] for n in graph.nodes() if isinstance(n, tuple) and len(n) == 2 and isinstance(n[1], dict)]
    return [attrs for _, attrs in graph.nodes(data=True)]  # networkx


class GraphLinks:
    """What one graph says about its keys, worked out once per graph: each key's aliases,
    ``aws_kms_key_policy`` and grants, every resource's vertex, and the variables without a value."""

    def __init__(self, graph: Any, account: str) -> None:
        self.graph = graph
        self.aliases: dict[str, list[str]] = {}
        self.policies: dict[str, dict] = {}
        self.grants: dict[str, list[dict]] = {}
        self.vertices: dict[str, dict] = {}
        self.keys: set[str] = set()
        self._valueless: set[tuple[str, str]] = set()   # (file, variable name)
        for attrs in graph_nodes(graph):
            kind = attrs.get("block_type_")
            if kind == "variable":
                if "default" not in attrs:
                    self._valueless.add((str(attrs.get("file_path_")), str(attrs.get("block_name_"))))
                continue
            rtype = attrs.get("resource_type")
            address = str(attrs.get("__address__") or attrs.get("block_name_") or "")
            if kind != "resource" or not address:
                continue
            self.vertices[without_instance_key(address)] = attrs
            if rtype in KEY_TYPES:
                self.keys.add(without_instance_key(address))
            if rtype not in LINKS:
                continue
            # Vertices hold their attributes unwrapped, references as written (aws_kms_key.k.key_id).
            values = fill_known(unwrap(attrs), account)
            target = key_reference(values.get(LINKS[rtype]))
            if target is None:
                continue
            key = target if target.startswith("module.") else module_prefix(address) + target
            if rtype == "aws_kms_alias":
                name = values.get("name")
                if not isinstance(name, str) or not name or unresolved(name):
                    name = f"{without_instance_key(address)} (name known after apply)"
                self.aliases.setdefault(key, []).append(name)
            elif rtype == "aws_kms_key_policy":
                self.policies[key] = values
            else:
                self.grants.setdefault(key, []).append(values)

    def from_valueless_variable(self, address: str, attribute: str) -> bool:
        """Was ``attribute`` of the resource rendered from a variable that has no value?
        (checkov renders one as an empty value of its type: ``{}`` for a map of tags.)"""
        vertex = self.vertices.get(without_instance_key(address), {})
        crumbs = (vertex.get("rendering_breadcrumbs_") or {}).get(attribute) or []
        return any(isinstance(c, dict) and c.get("type") == "variable" and not c.get("module_connection")
                   and (str(c.get("path")), str(c.get("name"))) in self._valueless for c in crumbs)
