"""The one checkov adapter every ``CKV_KMSIAC_<n>`` check is made of.

Each ``ckv_kmsiac_<n>_*.py`` beside this file holds only metadata (the rule it runs, its
checkov id, category and resource types) and calls :func:`cloudformation_check` and
:func:`terraform_check`. The logic is here, once: checkov's resource configuration is
turned into kms-iac's view by the template adapters (the same functions ``kms-iac scan
template`` uses), the registered rule judges the view, and its verdict becomes checkov's:

    PASS -> PASSED, FAIL -> FAILED (or SKIPPED when a kms-iac config suppression with a
    reason covers it), NOT_APPLICABLE -> UNKNOWN (checkov leaves UNKNOWN out of its
    reports, which is what "does not apply" means there), disabled in the config -> UNKNOWN.

What a per-resource check cannot see, and how it is seen anyway:

* CloudFormation: checkov hands a check one resource, but an alias (KMS012) is its own
  ``AWS::KMS::Alias`` resource and ``GetAtt``/``Ref`` point across the template. checkov's
  CloudFormation runner keeps the whole rendered template in a local variable
  (``definition``) of the frame that calls the check; :func:`_enclosing_template` finds
  it by identity (the resource we were given must be *that* template's resource of that
  name), so no path guessing. When it cannot be found (another checkov version), the key
  is judged alone and its aliases are unknown (KMS012 then fails only on a missing tag).
* Terraform (``.tf`` and plan JSON): checkov gives checks its resource graph
  (``self.graph``, as its own checks such as CKV_AWS_379 use). Aliases
  (``aws_kms_alias.target_key_id``), an ``aws_kms_key_policy`` (which replaces the key's
  own policy) and ``aws_kms_grant`` s are found there by the reference to the key.
  Values arrive wrapped in one-element lists and references may stay ``${...}``: they are
  unwrapped, and anything still unresolved is unknown, never a guess.

checkov imports each file here as a top-level module with this directory on ``sys.path``
(``import _base``); the repository root is added so ``kms_iac.rules`` imports, which needs
only the standard library and PyYAML (tests/test_rules_checkov.py checks that).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Iterable

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `kms-iac checkov` sets PYTHONPATH; plain `checkov --external-checks-dir` does not
    sys.path.append(str(_ROOT))

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck as _CfnResourceCheck  # noqa: E402
from checkov.common.bridgecrew.severities import Severities  # noqa: E402
from checkov.common.models.enums import CheckCategories, CheckResult  # noqa: E402
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck as _TfResourceCheck  # noqa: E402

from kms_iac.rules.config import RulesConfig, load_config  # noqa: E402
from kms_iac.rules.engine import evaluate_view  # noqa: E402
from kms_iac.rules.registry import FAIL, PASS, Rule, get_rule  # noqa: E402

CATEGORIES = {"ENCRYPTION": CheckCategories.ENCRYPTION, "IAM": CheckCategories.IAM}

# The resource types each front door turns into views (the adapters return None for others).
CFN_KEYS = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")
CFN_IDENTITY = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")
TF_KEYS = ("aws_kms_key", "aws_kms_external_key", "aws_kms_replica_key", "aws_kms_replica_external_key")
TF_KEY_POLICY = ("aws_kms_key_policy",)
TF_IDENTITY = ("aws_iam_policy", "aws_iam_role_policy", "aws_iam_user_policy", "aws_iam_group_policy", "aws_iam_role")

_config: RulesConfig | None = None


def rules_config() -> RulesConfig:
    """kms-iac's rules config, found upward from the directory checkov runs in (read once)."""
    global _config
    if _config is None:
        _config = load_config(Path.cwd())
    return _config


class _RuleCheck:
    """What the CloudFormation and Terraform checks share: metadata from the rule, the verdict."""

    rule: Rule

    def _setup(self, rule_id: str, check_id: str, name: str) -> dict[str, Any]:
        """checkov's metadata, which a check file states and the registry must agree with."""
        self.rule = get_rule(rule_id)
        if (check_id, name) != (self.rule.checkov_id, self.rule.title):
            raise ValueError(f"{check_id} ({name!r}) does not match rule {rule_id} ({self.rule.checkov_id}, "
                             f"{self.rule.title!r}); run scripts/generate_checkov_checks.py")
        return {"name": name, "id": check_id}

    def _after_init(self) -> None:
        self.severity = Severities[rules_config().severity(self.rule.id, self.rule.severity)]

    def run(self, scanned_file, entity_configuration, entity_name, entity_type, skip_info):  # type: ignore[override]
        self._scanned = (scanned_file, entity_name)  # checkov passes these to run() only
        return super().run(scanned_file, entity_configuration, entity_name, entity_type, skip_info)  # type: ignore[misc]

    def verdict(self, view) -> CheckResult:
        """The registered rule's verdict on ``view`` in checkov's terms (see the module docstring)."""
        self.evaluated_keys = []
        if view is None:
            return CheckResult.UNKNOWN
        findings = evaluate_view(view, rules_config(), [self.rule])
        if not findings:  # disabled in the config, or a rule for another kind of view
            return CheckResult.UNKNOWN
        f = findings[0]
        self.details = [f.message]
        if f.status == PASS:
            return CheckResult.PASSED
        if f.status == FAIL:
            if f.suppressed:
                self.details = [f"{f.message} (suppressed in the kms-iac config: {f.suppressed})"]
                return CheckResult.SKIPPED
            return CheckResult.FAILED
        return CheckResult.UNKNOWN


# --- CloudFormation ----------------------------------------------------------------

def _enclosing_template(resource: dict, name: str) -> dict | None:
    """The rendered template checkov is scanning ``resource`` (named ``name``) from.

    checkov's CloudFormation runner iterates ``definition["Resources"]`` and calls the
    registry from that frame; a ``definition`` whose resource ``name`` *is* our resource
    is the template it belongs to.
    """
    frame = sys._getframe(1)
    while frame is not None:
        d = frame.f_locals.get("definition") if "definition" in frame.f_code.co_varnames else None
        if isinstance(d, dict):
            res = d.get("Resources")
            if isinstance(res, dict) and res.get(name) is resource:
                return d
        frame = frame.f_back
    return None


def without_bookkeeping(value: Any) -> Any:
    """``value`` without the keys checkov's parsers add to every mapping (``__file__``,
    ``__startline__``, ``__endline__``): inside a policy they would read as condition operators."""
    if isinstance(value, dict):
        return {k: without_bookkeeping(v) for k, v in value.items()
                if not (isinstance(k, str) and k.startswith("__") and k.endswith("__"))}
    if isinstance(value, list):
        return [without_bookkeeping(v) for v in value]
    return value


def _as_template(definition: dict) -> dict:
    """checkov's rendered definition in template shape: bookkeeping keys dropped, and its
    Parameters (which hold their fields in Properties) as a template writes them."""
    out = {"Resources": without_bookkeeping(definition["Resources"])}
    params = definition.get("Parameters")
    if isinstance(params, dict):
        out["Parameters"] = {n: (p.get("Properties", p) if isinstance(p, dict) else p)
                             for n, p in without_bookkeeping(params).items()}
    return out


_cfn_views: dict[int, tuple[dict, dict[str, Any]]] = {}  # id(definition) -> (definition, views by logical id)


def _cfn_view(resource: dict, name: str, file: str):
    from kms_iac.rules.adapters import cloudformation

    definition = _enclosing_template(resource, name)
    if definition is None:
        resource = without_bookkeeping(resource)
        view = cloudformation.view_from_resource(name, resource, {"Resources": {name: resource}}, file, rules_config())
        if view is not None and view.kind == "key":
            view.aliases = None  # the aliases live in other resources we cannot see
        return view
    cached = _cfn_views.get(id(definition))
    if cached is None or cached[0] is not definition:
        views = cloudformation.views_from_template(_as_template(definition), file, rules_config())
        cached = (definition, {v.resource: v for v in views})
        _cfn_views.clear()  # one template at a time: checkov scans file by file
        _cfn_views[id(definition)] = cached
    return cached[1].get(name)


class CloudFormationRuleCheck(_RuleCheck, _CfnResourceCheck):
    def __init__(self, rule_id: str, check_id: str, name: str, category: str, resources: Iterable[str]) -> None:
        meta = self._setup(rule_id, check_id, name)
        super().__init__(categories=(CATEGORIES[category],), supported_resources=tuple(resources), **meta)
        self._after_init()

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        file, name = self._scanned
        return self.verdict(_cfn_view(conf, name, file))


def cloudformation_check(rule_id: str, check_id: str, name: str, category: str,
                         resources: Iterable[str]) -> CloudFormationRuleCheck:
    return CloudFormationRuleCheck(rule_id, check_id, name, category, resources)


# --- Terraform -----------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
# References a template alone cannot resolve but whose meaning is fixed: the account, partition
# and Region the configuration is applied in, written through data sources. They stand for the
# configured account (or the placeholder) exactly as AWS::AccountId does in CloudFormation.
_DATA_ACCOUNT = re.compile(r"^data\.aws_caller_identity\.[\w-]+\.account_id$")
_DATA_PARTITION = re.compile(r"^data\.aws_partition\.[\w-]+\.partition$")
_DATA_REGION = re.compile(r"^data\.aws_region\.[\w-]+\.(name|region)$")


def unwrap(value: Any) -> Any:
    """checkov's HCL value as a plan holds it: one-element lists unwrapped, checkov's keys dropped."""
    if isinstance(value, list):
        if len(value) == 1 and not isinstance(value[0], list):
            return unwrap(value[0])
        return [unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("__"))}
    return value


def _substitute(text: str) -> str:
    from kms_iac.rules.view import PLACEHOLDER_ACCOUNT

    def one(m: re.Match) -> str:
        ref = m.group(1).strip()
        if _DATA_ACCOUNT.match(ref):
            return rules_config().account or PLACEHOLDER_ACCOUNT
        if _DATA_PARTITION.match(ref):
            return "aws"
        if _DATA_REGION.match(ref):
            return "us-east-1"
        return m.group(0)
    return _INTERPOLATION.sub(one, text)


def resolve_known(value: Any) -> Any:
    """``value`` with the account/partition/Region data-source references filled in."""
    if isinstance(value, str):
        return _substitute(value) if "${" in value else value
    if isinstance(value, list):
        return [resolve_known(v) for v in value]
    if isinstance(value, dict):
        return {k: resolve_known(v) for k, v in value.items()}
    return value


def unresolved(value: Any) -> bool:
    """Does ``value`` (anywhere inside) still hold a ``${...}`` checkov could not resolve?"""
    if isinstance(value, str):
        return "${" in value and bool(_INTERPOLATION.search(value))
    if isinstance(value, list):
        return any(unresolved(v) for v in value)
    if isinstance(value, dict):
        return any(unresolved(v) for v in value.values())
    return False


def _reference(value: Any) -> str | None:
    """The resource address an attribute refers to: ``aws_kms_key.k`` of ``${aws_kms_key.k.key_id}``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    m = re.match(r"^((?:module\.[\w-]+(?:\[[^\]]*\])?\.)*aws_kms_\w+\.[\w-]+)(\[[^\]]*\])?(\.\w+)?$", text)
    return m.group(1) if m else None


def _graph_nodes(graph: Any) -> list[dict]:
    """The attribute dicts of checkov's resource graph (rustworkx, or networkx when so configured)."""
    if graph is None:
        return []
    try:
        nodes = graph.nodes(data=True)   # networkx
        return [attrs for _, attrs in nodes]
    except TypeError:
        return [n[1] for n in graph.nodes() if isinstance(n, tuple) and len(n) == 2]  # rustworkx: (index, attrs)


class _Links:
    """Aliases, key policies and grants of every key in one graph, found once per graph."""

    LINKS = {"aws_kms_alias": "target_key_id", "aws_kms_key_policy": "key_id", "aws_kms_grant": "key_id"}

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.aliases: dict[str, list[str]] = {}
        self.policies: dict[str, dict] = {}
        self.grants: dict[str, list[dict]] = {}
        for attrs in _graph_nodes(graph):
            rtype = attrs.get("resource_type")
            if rtype not in self.LINKS:
                continue
            # Graph vertices hold their attributes unwrapped, with references as written
            # (aws_kms_key.k.key_id) and checkov's own keys (block_name_, __address__...) beside them.
            values = resolve_known(unwrap(attrs))
            key = _reference(values.get(self.LINKS[rtype]))
            if key is None:
                continue
            key = _qualify(key, attrs)
            if rtype == "aws_kms_alias":
                name = values.get("name") or values.get("name_prefix") or f"{attrs.get('block_name_')} (name unknown)"
                self.aliases.setdefault(key, []).append(str(name))
            elif rtype == "aws_kms_key_policy":
                self.policies[key] = values
            else:
                self.grants.setdefault(key, []).append(values)


def _module_prefix(address: str) -> str:
    """``module.a.module.b.`` of a resource address (with instance keys dropped), or ""."""
    parts = re.findall(r"module\.[\w-]+(?:\[[^\]]*\])?\.", address)
    return "".join(re.sub(r"\[[^\]]*\]", "", p) for p in parts)


def _qualify(reference: str, attrs: dict) -> str:
    """A reference made inside a module, as the address of the resource it names."""
    if reference.startswith("module."):
        return reference
    return _module_prefix(str(attrs.get("__address__") or attrs.get("address") or "")) + reference


_links_cache: tuple[Any, _Links] | None = None


def _links(graph: Any) -> _Links:
    global _links_cache
    if _links_cache is None or _links_cache[0] is not graph:
        _links_cache = (graph, _Links(graph))
    return _links_cache[1]


class TerraformRuleCheck(_RuleCheck, _TfResourceCheck):
    def __init__(self, rule_id: str, check_id: str, name: str, category: str, resources: Iterable[str]) -> None:
        meta = self._setup(rule_id, check_id, name)
        super().__init__(categories=(CATEGORIES[category],), supported_resources=tuple(resources), **meta)
        self._after_init()

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        return self.verdict(self._view(conf))

    def _view(self, conf: dict[str, Any]):
        from kms_iac.rules.adapters import terraform

        file, name = self._scanned
        address = str(conf.get("__address__") or f"{self.entity_type}.{name}")
        base = re.sub(r"\[[^\]]*\]$", "", address)   # a counted instance's key: aws_kms_key.k[0] -> aws_kms_key.k
        values = resolve_known(unwrap(conf))
        unknown = {k: True for k, v in values.items() if unresolved(v)}
        links = _links(self.graph)
        if self.entity_type == "aws_kms_key_policy":
            return self._orphan_policy_view(address, values, unknown, links, file)
        policy_values = links.policies.get(base)
        override = None
        if policy_values is not None:
            override = policy_values.get("policy")
            if unresolved(override):
                override = "${unresolved}"  # not a document: the policy rules say NOT_APPLICABLE
        view = terraform.view_from_values(
            self.entity_type, address, values, file, rules_config(), aliases=links.aliases.get(base, ()),
            policy_override=override, grants=links.grants.get(base, ()), unknown=unknown)
        if view is None or view.kind != "key":
            return view
        if policy_values is not None and policy_values.get("bypass_policy_lockout_safety_check") is True:
            view.bypass_lockout = True
        if "tags" in unknown:
            view.tags = None
        if self.graph is None:
            view.aliases = None  # no graph: the aliases (other resources) cannot be seen
        return view

    def _orphan_policy_view(self, address: str, values: dict, unknown: dict, links: _Links, file: str):
        """An aws_kms_key_policy judged on its own when its key is not in this configuration."""
        from kms_iac.rules.adapters import terraform

        target = _reference(values.get("key_id"))
        if target is not None and _qualify(target, {"__address__": address}) in self._key_addresses(links):
            return None  # judged on the key it replaces the policy of
        key_values = {"policy": values.get("policy"),
                      "bypass_policy_lockout_safety_check": values.get("bypass_policy_lockout_safety_check", False)}
        return terraform.view_from_values("aws_kms_key", address, key_values, file, rules_config(),
                                          unknown={k: True for k in key_values if k in unknown})

    def _key_addresses(self, links: _Links) -> set[str]:
        if not hasattr(links, "keys"):
            links.keys = {re.sub(r"\[[^\]]*\]$", "", str(a.get("__address__") or ""))
                          for a in _graph_nodes(links.graph) if a.get("resource_type") in TF_KEYS}
        return links.keys


def terraform_check(rule_id: str, check_id: str, name: str, category: str,
                    resources: Iterable[str]) -> TerraformRuleCheck:
    return TerraformRuleCheck(rule_id, check_id, name, category, resources)
