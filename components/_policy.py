"""The key policy of a component, as an Output: built by the shared policy builder once the
account (asked of the provider's KMS target) and any Output principals are known."""

from __future__ import annotations

from typing import Any

import pulumi

from ._inputs import ComponentInputError
from kms_iac import resources as kms
from kms_iac.policy.builder import PolicyBuildError, build_key_policy, to_json


# One getCallerIdentity per provider and program run: a fleet of 500 tenants asks once.
_ACCOUNTS: dict[int, pulumi.Output[str]] = {}


def account_output(account: str | None, opts: pulumi.ResourceOptions | None) -> pulumi.Output[str]:
    """The key's account: given, or asked of the provider's target (getCallerIdentity)."""
    if account is not None:
        return pulumi.Output.from_input(account)
    provider = opts.provider if opts is not None else None
    if id(provider) not in _ACCOUNTS:
        _ACCOUNTS[id(provider)] = kms.get_caller_identity_output(
            pulumi.InvokeOptions(provider=provider)).apply(lambda c: c.account_id)
    return _ACCOUNTS[id(provider)]


def policy_output(at: str, account: pulumi.Input[str], roles: dict[str, Any]) -> pulumi.Output[str]:
    """``build_key_policy(account, **roles)`` once everything in ``roles`` is resolved."""

    def build(args: list) -> str:
        acct, resolved_roles = args
        try:
            return to_json(build_key_policy(acct, **resolved_roles))
        except PolicyBuildError as e:
            raise ComponentInputError(f"{at}: {e}") from None

    return pulumi.Output.all(account, pulumi.Output.from_input(roles)).apply(build)


def check_roles_now(at: str, roles: dict[str, Any]) -> None:
    """Build once with a stand-in account when every role is a plain value, so a mistake
    fails when the program runs, not halfway through an update."""
    flat = [v for value in roles.values() for v in (value.values() if isinstance(value, dict) else
                                                    value if isinstance(value, (list, tuple)) else [value])]
    if any(isinstance(v, pulumi.Output) for v in flat):
        return
    try:
        build_key_policy("000000000000", **roles)
    except PolicyBuildError as e:
        msg = str(e)
        if "in the key's own account 000000000000" not in msg:
            raise ComponentInputError(f"{at}: {msg}") from None
