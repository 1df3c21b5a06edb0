"""The Pulumi policy pack: every rule as one pulumi_policy stack policy, gating preview and update.

``rules/policy_pack/__main__.py`` calls :func:`serve`. Each rule becomes a
``StackValidationPolicy`` named after its id and module (``kms001-root-access``) whose
description is the rule's title. Stack validation is used for every rule because keys
are only half the story: an alias or a grant names its key through ``targetKeyId`` /
``keyId``, which during a preview is unknown and is linked through the resource graph
(see :mod:`kms_iac.rules.adapters.pulumi`).

Settings, read when the engine configures the pack for a stack (``ConfigureStack``,
before any step and before the engine asks for the policies' enforcement levels):

- the rules config (``kms-iac.yaml`` or ``[tool.kms-iac]``) found upward from the
  program's directory, which is the pack's working directory;
- overridden by stack config in the ``kms-iac`` namespace with the same names
  (``pulumi config set kms-iac:advisory '["KMS012"]'``, ``kms-iac:minDeletionWindowDays 14``);
- enforcement: mandatory by default, advisory for the config's ``advisory`` rules,
  disabled for its ``disabled`` rules (a ``--policy-pack-config`` file still overrides);
- ``kms-iac:allowKeyDeletion: true`` lets an update that deletes or replaces keys through
  the KMS003 gate (:mod:`kms_iac.rules.pulumi_deletion_gate`).

A violation names the rule id, the resource and the remediation. Suppressed failures
are not reported. With ``KMS_IAC_POLICY_FINDINGS=FILE`` in the environment the pack also
writes every finding (PASS and NOT_APPLICABLE too) as ``--format json`` does, for CI
reports.

pulumi_policy 1.21's servicer drops the stack config it is sent; :func:`_capture_stack_config`
wraps its ``ConfigureStack`` to keep it (the one private hook this module relies on, pinned
with the SDK version in pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from kms_iac.rules.adapters.pulumi import (
    ENGINE_UNKNOWNS,
    IDENTITY_POLICY_TYPES,
    KEY_TYPES,
    UNKNOWN,
    PulumiResource,
    key_view,
    views,
)
from kms_iac.rules.config import ConfigError, RulesConfig, config_from_dict, load_config
from kms_iac.rules.engine import Finding, evaluate, evaluate_view
from kms_iac.rules.pulumi_deletion_gate import StateUnavailable, key_changes, previous_keys
from kms_iac.rules.registry import FAIL, NOT_APPLICABLE, Rule, all_rules, get_rule
from kms_iac.rules.report import render

PACK_NAME = "kms-iac"
NAMESPACE = "kms-iac"
ALLOW_KEY_DELETION = f"{NAMESPACE}:allowKeyDeletion"
FINDINGS_ENV = "KMS_IAC_POLICY_FINDINGS"
GATE_RULE = "KMS003"
# Stack config keys of the namespace that belong to the provider, not to the rules.
_PROVIDER_KEYS = {"target", "region", "profile", "dataDir", "allowKeyDeletion"}


def policy_name(rule: Rule) -> str:
    """``kms001-root-access`` for the rule in ``kms001_root_access.py``."""
    return rule.check.__module__.rsplit(".", 1)[-1].replace("_", "-")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).replace("-", "_").lower()


def _true(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def stack_rules_config(base: RulesConfig, stack_config: Mapping[str, str]) -> RulesConfig:
    """``base`` with the settings given as ``kms-iac:<setting>`` stack config on top."""
    raw: dict[str, Any] = {}
    known = set(RulesConfig.__dataclass_fields__) - {"source"}
    for key, value in stack_config.items():
        ns, _, name = key.partition(":")
        if ns != NAMESPACE or name in _PROVIDER_KEYS or _snake(name) not in known:
            continue
        try:
            raw[_snake(name)] = json.loads(value)
        except (TypeError, ValueError):
            raw[_snake(name)] = value
    if not raw:
        return base
    given = config_from_dict(raw, "stack config (kms-iac:*)")
    return dataclasses.replace(base, **{k: getattr(given, k) for k in raw})


def _account_from_aws_config(stack_config: Mapping[str, str]) -> str | None:
    """The one account pulumi-aws is allowed to use, if the stack says so."""
    try:
        ids = json.loads(stack_config.get("aws:allowedAccountIds", "null"))
    except ValueError:
        return None
    return str(ids[0]) if isinstance(ids, list) and len(ids) == 1 else None


@dataclass
class PackState:
    """What the pack knows about the stack it runs for: settings, and the state before this update."""

    cwd: Path = field(default_factory=Path.cwd)
    stack: str | None = None
    stack_config: dict[str, str] = field(default_factory=dict)
    config: RulesConfig = field(default_factory=RulesConfig)
    previous: list[PulumiResource] | None = None   # keys in the current checkpoint
    previous_error: str | None = None              # why they could not be read
    gate_urns: dict[str, str] = field(default_factory=dict)  # resource name -> URN of keys the gate reports
    _cache: tuple[str, list[Finding]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, stack: str, config: Mapping[str, str], read_state: Callable[[str], list[PulumiResource]]) -> None:
        """Settings for ``stack``; raises ConfigError for an invalid rules config."""
        self.stack, self.stack_config = stack, dict(config)
        self.config = stack_rules_config(load_config(self.cwd), self.stack_config)
        if self.config.account is None:
            acct = _account_from_aws_config(self.stack_config)
            if acct:
                self.config = dataclasses.replace(self.config, account=acct)
        try:
            self.previous, self.previous_error = read_state(stack), None
        except StateUnavailable as e:
            self.previous, self.previous_error = None, str(e)

    @property
    def allow_key_deletion(self) -> bool:
        return _true(self.stack_config.get(ALLOW_KEY_DELETION, "false"))

    def enforcement(self, rule_id: str) -> str:
        if rule_id in self.config.disabled:
            return "disabled"
        return "advisory" if rule_id in self.config.advisory else "mandatory"

    def findings(self, resources: list[PulumiResource]) -> list[Finding]:
        """Every rule's finding for the new state (and KMS003's for keys it deletes); computed once per state."""
        key = json.dumps([(r.urn, r.props, r.property_dependencies) for r in resources], default=repr, sort_keys=True)
        with self._lock:
            if self._cache and self._cache[0] == key:
                return self._cache[1]
            gate = self._gate(resources)
            gated = {f.resource for f in gate}  # a replaced key's KMS003 is the gate's verdict
            found = [f for f in evaluate(views(resources, self.config.account), self.config)
                     if not (f.rule == GATE_RULE and f.resource in gated)] + gate
            self._cache = (key, found)
            _write_findings(found)
            return found

    def _gate(self, resources: list[PulumiResource]) -> list[Finding]:
        """KMS003 for the keys the update deletes or replaces (suppressed by kms-iac:allowKeyDeletion)."""
        rule = get_rule(GATE_RULE)
        if rule.id in self.config.disabled:
            return []
        allowed = f"{ALLOW_KEY_DELETION} is true" if self.allow_key_deletion else None
        if self.previous is None:
            return [Finding(rule.id, self.stack or "stack", FAIL, self.config.severity(rule.id, rule.severity),
                            f"cannot tell whether this update deletes keys: {self.previous_error}",
                            rule.title, rule.remediation, source="pulumi", suppressed=allowed)]
        out = []
        for change in key_changes(self.previous, resources):
            view = key_view(change.key, self.config.account)
            view.pending_deletion = True
            for f in evaluate_view(view, self.config, [rule]):
                if f.status == FAIL:
                    # A deleted key is not in the new state, so the engine files its violation under the
                    # stack: the message names the key's URN itself.
                    verb = (f"removed from the program ({change.key.urn})" if change.change == "deleted"
                            else "replaced (a new key is created)")
                    f = dataclasses.replace(f, message=f"{f.message}: it is {verb}",
                                            suppressed=f.suppressed or allowed)
                    self.gate_urns[view.resource] = change.key.urn
                out.append(f)
        return out


def _write_findings(found: list[Finding]) -> None:
    path = os.environ.get(FINDINGS_ENV)
    if path:
        Path(path).write_text(render(found, "json"))


def plain(value: Any) -> Any:
    """pulumi_policy's unknown-checking proxies as plain values, unknowns as ``UNKNOWN`` (never raising)."""
    from pulumi_policy.proxy import _DictProxy, _ListProxy  # the SDK's own proxy types
    if isinstance(value, _DictProxy):
        value = value["__target"]
    elif isinstance(value, _ListProxy):
        value = value["__target"]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str) and value in ENGINE_UNKNOWNS:
        return UNKNOWN
    return value


def resource_of(r: Any) -> PulumiResource:
    """A pulumi_policy ``PolicyResource`` as the adapter's plain resource."""
    return PulumiResource(
        urn=r.urn, type=r.resource_type, props=plain(r.props),
        dependencies=[d.urn for d in r.dependencies],
        property_dependencies={k: [d.urn for d in v] for k, v in r.property_dependencies.items()},
        aliases=[a for a in (getattr(r.opts, "aliases", None) or []) if isinstance(a, str)],
    )


def violation_text(f: Finding, rule: Rule) -> str:
    return f"{f.rule} [{f.severity}] {f.resource}: {f.message}.\nRemediation: {rule.remediation}"


def build_policies(state: PackState) -> list[Any]:
    """One stack validation policy per rule, its enforcement level read from ``state`` when asked."""
    import pulumi_policy as pp

    levels = {"mandatory": pp.EnforcementLevel.MANDATORY, "advisory": pp.EnforcementLevel.ADVISORY,
              "disabled": pp.EnforcementLevel.DISABLED}
    severities = {"INFO": pp.Severity.LOW, "LOW": pp.Severity.LOW, "MEDIUM": pp.Severity.MEDIUM,
                  "HIGH": pp.Severity.HIGH, "CRITICAL": pp.Severity.CRITICAL}

    class RulePolicy(pp.StackValidationPolicy):
        """A rule as a stack policy; its level follows the config the stack was configured with."""

        def __init__(self, rule: Rule) -> None:
            self.rule = rule
            super().__init__(policy_name(rule), rule.title, self._validate, severity=severities[rule.severity],
                             remediation_steps=rule.remediation)

        @property
        def enforcement_level(self):  # type: ignore[override]
            return levels[state.enforcement(self.rule.id)]

        @enforcement_level.setter
        def enforcement_level(self, _value) -> None:
            pass  # decided by the rules config, not at construction

        def _validate(self, args, report_violation) -> None:
            resources = [resource_of(r) for r in args.resources]
            urns = {r.name: r.urn for r in resources if r.type in KEY_TYPES or r.type in IDENTITY_POLICY_TYPES}
            mine = [f for f in state.findings(resources) if f.rule == self.rule.id]
            for f in mine:
                if f.blocking:
                    urn = state.gate_urns.get(f.resource) if f.rule == GATE_RULE else None
                    urn = urn or urns.get(f.resource)
                    report_violation(violation_text(f, self.rule), urn)
            if mine and all(f.status == NOT_APPLICABLE for f in mine):
                args.not_applicable(f"{self.rule.id} applies to none of the stack's resources")

    return [RulePolicy(r) for r in all_rules()]


def _capture_stack_config(on_configure: Callable[[Any, Any], None]) -> None:
    """Make pulumi_policy's servicer hand ConfigureStack's request (stack, config) to ``on_configure``."""
    from pulumi_policy import policy as sdk

    original = sdk._PolicyAnalyzerServicer.ConfigureStack

    def configure_stack(self, request, context):
        on_configure(request, context)
        return original(self, request, context)

    sdk._PolicyAnalyzerServicer.ConfigureStack = configure_stack


def _unbuffered_stdout() -> None:
    """pulumi-policy announces its port with ``sys.stdout.buffer.write`` and no flush; unless
    the language host sets PYTHONUNBUFFERED, the line sits in the buffer (stdout is a pipe) and
    the engine waits for it forever. Make stdout unbuffered so the pack starts under any host."""
    import io

    sys.stdout.flush()
    sys.stdout = io.TextIOWrapper(open(sys.stdout.fileno(), "wb", buffering=0, closefd=False), write_through=True)


def serve() -> None:
    """Run the pack (what the engine starts through the language host); blocks until stopped."""
    import grpc
    import pulumi_policy as pp

    _unbuffered_stdout()
    state = PackState()

    def on_configure(request, context) -> None:
        env = dict(os.environ)
        try:
            state.configure(request.stack, dict(request.config),
                            lambda stack: previous_keys(stack, state.cwd, env))
        except ConfigError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"kms-iac policy pack: {e}")

    _capture_stack_config(on_configure)
    pp.PolicyPack(name=PACK_NAME, policies=build_policies(state),
                  description="kms-iac compliance rules KMS001-KMS016 for AWS KMS keys")

