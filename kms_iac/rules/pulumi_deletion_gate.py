"""KMS003's Pulumi gate: which keys an update would delete or replace.

What this engine version (3.260.0) lets a policy pack see, and why the gate reads the
stack's state itself:

- Resource validation (``Analyze``) is called with a resource's new inputs before its
  step; the request carries no planned operation and no old state, and a resource
  removed from the program is never analyzed at all.
- Stack validation (``AnalyzeStack``) is called once, after step generation (preview) or
  after the steps ran (update), with the resources of the *new* state only: a deleted
  key is simply absent, and nothing says a key was replaced.

So the gate compares two things it can see for itself: the stack's current checkpoint,
read with ``pulumi stack export`` when the pack is configured (before any step runs), and
the new state handed to stack validation. A key in the checkpoint and not in the new
state is being deleted; a key still there whose key id is not the one in the checkpoint
(a replacement's new key has no id yet during a preview) is being replaced, and
replacing a KMS key schedules the old one for deletion.

Because stack validation runs after the steps of ``pulumi up --skip-preview``, the gate
blocks only through a preview (``pulumi preview``, or the preview ``pulumi up`` runs
first): with ``--skip-preview`` a deletion it reports has already been scheduled (KMS's
waiting period still allows CancelKeyDeletion).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

from kms_iac.rules.adapters.pulumi import KEY_TYPES, PulumiResource, is_unknown

EXPORT_TIMEOUT_S = 120


class StateUnavailable(Exception):
    """The stack's current state could not be read; the message says why, in one line."""


@dataclass(frozen=True)
class KeyChange:
    key: PulumiResource                  # the key as it is in the current state
    change: Literal["deleted", "replaced"]


def previous_keys(stack: str, cwd: Path | str | None = None, env: dict[str, str] | None = None,
                  pulumi: str | None = None) -> list[PulumiResource]:
    """The keys in ``stack``'s current checkpoint (``pulumi stack export`` run where the program runs).

    The pack inherits the CLI's environment (backend URL, PULUMI_HOME, passphrase), so the
    export reads the same backend the update writes.
    """
    exe = pulumi or shutil.which("pulumi", path=(env or os.environ).get("PATH"))
    if not exe:
        raise StateUnavailable("the pulumi CLI is not on PATH, so the stack's current state cannot be read")
    try:
        out = subprocess.run([exe, "stack", "export", "--stack", stack, "--non-interactive"], cwd=cwd,
                             env=env, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StateUnavailable(f"pulumi stack export failed: {e}") from None
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        raise StateUnavailable(f"pulumi stack export --stack {stack} failed: {why}")
    try:
        doc = json.loads(out.stdout)
    except ValueError as e:
        raise StateUnavailable(f"pulumi stack export printed no JSON: {e}") from None
    return keys_in_checkpoint(doc)


def keys_in_checkpoint(doc: dict) -> list[PulumiResource]:
    """The live keys of an exported deployment (resources already pending deletion are left out)."""
    resources = (doc.get("deployment") or {}).get("resources") or []
    return [PulumiResource(urn=r["urn"], type=r["type"], props={**(r.get("inputs") or {}), **(r.get("outputs") or {})},
                           dependencies=list(r.get("dependencies") or []))
            for r in resources
            if r.get("type") in KEY_TYPES and not r.get("delete") and r.get("custom", True)]


def _key_id(res: PulumiResource) -> str | None:
    v = res.props.get("keyId")
    return None if v is None or is_unknown(v) else str(v)


def key_changes(old_keys: Iterable[PulumiResource], new: Iterable[PulumiResource]) -> list[KeyChange]:
    """The keys of the current state that the new state deletes or replaces."""
    by_urn: dict[str, PulumiResource] = {}
    for r in new:
        by_urn[r.urn] = r
        for alias in r.aliases:  # a renamed resource is the same resource
            by_urn.setdefault(alias, r)
    out = []
    for old in old_keys:
        now = by_urn.get(old.urn)
        if now is None:
            out.append(KeyChange(old, "deleted"))
        elif _key_id(old) is not None and _key_id(now) != _key_id(old):
            out.append(KeyChange(old, "replaced"))
    return out
