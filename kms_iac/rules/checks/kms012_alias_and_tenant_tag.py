"""KMS012: a customer managed key has an alias and the tenant tag."""

from __future__ import annotations

from kms_iac.rules.applicability import customer_managed_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule


@rule("KMS012", severity="LOW",
      title="Key has an alias and the tenant tag",
      rationale="Keys without a name or an owner are the ones nobody dares to delete or rotate; the tenant "
                "tag is what per-tenant billing, access reviews and incident response look up.",
      remediation="Create an alias (alias/<prefix>/<tenant>) for the key and tag it with the configured tenant "
                  "tag (\"tenant\" by default).")
def check(view, config):
    na = customer_managed_na(view)
    if na:
        return na
    missing = []
    if view.aliases is not None and not view.aliases:
        missing.append("alias")
    tag = config.tenant_tag
    if view.tags is not None and not str(view.tags.get(tag, "")).strip():
        missing.append(f"'{tag}' tag")
    if missing:
        return failed("key has no " + " and no ".join(missing))
    if view.aliases is None or view.tags is None:  # a live scan that may not list aliases or tags
        return not_applicable("the key's " + ("aliases" if view.aliases is None else "tags") + " are unknown from this source")
    return passed(f"key has alias {view.aliases[0]} and {tag}={view.tags[tag]}")
