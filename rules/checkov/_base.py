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
  own policy) and ``aws_kms_grant`` s are found there by their reference to the key; an
  ``aws_kms_key_policy`` whose key is not in the configuration is judged on its own by the
  policy rules. Values arrive wrapped in one-element lists, and what checkov cannot render
  stays a reference (``var.x``, ``data.aws_iam_policy_document.k.json``, ``${...}``): see
  ``_hcl.py``. Unrendered values are unknown, never a guess.
* AWS::KMS::Alias, aws_kms_alias and aws_kms_grant are not checked on their own: no rule
  judges an alias or a grant by itself; they count on the key they point at.

checkov imports each file here as a top-level module with this directory on ``sys.path``
(``import _base``); the repository root is added so ``kms_iac.rules`` imports, which needs
only the standard library and PyYAML (tests/test_rules_checkov.py checks that).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

# The directory holding the kms_iac package: the checkout (rules/checkov/ here), or the
# site-packages of a wheel install (kms_iac/_bundled/checkov_checks/ here).
_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "kms_iac" / "__init__.py").is_file())
if str(_ROOT) not in sys.path:  # `kms-iac checkov` sets PYTHONPATH; plain `checkov --external-checks-dir` does not
    sys.path.append(str(_ROOT))

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck as _CfnResourceCheck  # noqa: E402
from checkov.common.bridgecrew.severities import Severities  # noqa: E402
from checkov.common.models.enums import CheckCategories, CheckResult  # noqa: E402
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck as _TfResourceCheck  # noqa: E402

from _hcl import GraphLinks, fill_known, key_reference, module_prefix, unresolved, unwrap, without_instance_key  # noqa: E402
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

_links_cache: tuple[Any, GraphLinks] | None = None


def _links(graph: Any) -> GraphLinks:
    """The graph's links, worked out once per graph (checkov scans a graph's resources in a row)."""
    global _links_cache
    if _links_cache is None or _links_cache[0] is not graph:
        _links_cache = (graph, GraphLinks(graph, _account()))
    return _links_cache[1]


def _account() -> str:
    from kms_iac.rules.view import PLACEHOLDER_ACCOUNT

    return rules_config().account or PLACEHOLDER_ACCOUNT


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
        links = _links(self.graph)
        values = fill_known(unwrap(conf), _account())
        # Unknown: a reference checkov could not render, or a value it made up for a variable
        # without one. Tags keep their keys when only a value is a reference (the tag is set).
        unknown = {k: True for k, v in values.items()
                   if (unresolved(v) if k != "tags" else isinstance(v, str) and unresolved(v))
                   or links.from_valueless_variable(address, k)}
        if self.entity_type == "aws_kms_key_policy":
            return self._policy_of_unmanaged_key(address, values, unknown, links, file)
        base = without_instance_key(address)
        linked = links.policies.get(base)
        override = None
        if linked is not None:
            override = linked.get("policy")
            if override is None or unresolved(override):
                override = "unresolved"  # not a document: the policy rules say NOT_APPLICABLE
        view = terraform.view_from_values(
            self.entity_type, address, values, file, rules_config(), aliases=links.aliases.get(base, ()),
            policy_override=override, grants=links.grants.get(base, ()), unknown=unknown)
        if view is None or view.kind != "key":
            return view
        if linked is not None and linked.get("bypass_policy_lockout_safety_check") is True:
            view.bypass_lockout = True
        if "tags" in unknown:
            view.tags = None
        if self.graph is None:
            view.aliases = None  # without the graph, aliases (other resources) cannot be seen
        return view

    def _policy_of_unmanaged_key(self, address: str, values: dict, unknown: dict, links: GraphLinks, file: str):
        """An aws_kms_key_policy is judged on its key; when its key is not in this configuration
        (a key managed elsewhere), the policy rules judge it on its own."""
        from kms_iac.rules.adapters import terraform

        target = key_reference(values.get("key_id"))
        if target is not None and (target if target.startswith("module.") else module_prefix(address) + target) \
                in links.keys:
            return None
        key_values = {k: values[k] for k in ("policy", "bypass_policy_lockout_safety_check") if k in values}
        return terraform.view_from_values("aws_kms_key", address, key_values, file, rules_config(),
                                          unknown={k: True for k in key_values if k in unknown})


def terraform_check(rule_id: str, check_id: str, name: str, category: str,
                    resources: Iterable[str]) -> TerraformRuleCheck:
    return TerraformRuleCheck(rule_id, check_id, name, category, resources)
