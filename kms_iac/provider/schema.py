"""The provider's Pulumi package schema, generated from the resource specs."""

from __future__ import annotations

from kms_iac.provider import PACKAGE, VERSION
from kms_iac.provider.spec import Prop, ResourceSpec

CONFIG = {
    "target": {"type": "string", "description": "local (the embedded backend, default), aws, or a KMS endpoint URL.", "default": "local"},
    "region": {"type": "string", "description": "AWS region (default: the credential chain's, or us-east-1)."},
    "profile": {"type": "string", "description": "AWS profile for target aws or an endpoint URL."},
    "dataDir": {"type": "string", "description": "Data dir of the local backend (default: .kms-iac in the project)."},
}


def _type(p: Prop) -> dict:
    if p.type == "map":
        return {"type": "object", "additionalProperties": {"type": "string"}}
    if p.type == "array":
        return {"type": "array", "items": {"type": "string"}}
    return {"type": p.type}


def _prop(p: Prop) -> dict:
    out = {**_type(p), "description": p.description}
    if p.secret:
        out["secret"] = True
    if p.replaces:
        out["replaceOnChanges"] = True
    if p.default is not None and not isinstance(p.default, dict):
        out["default"] = p.default
    return out


def resource_schema(spec: ResourceSpec) -> dict:
    return {
        "description": spec.description,
        "properties": {p.name: _prop(p) for p in spec.props},
        "required": [p.name for p in spec.props if p.output or p.required],
        "inputProperties": {p.name: _prop(p) for p in spec.inputs},
        "requiredInputs": [p.name for p in spec.inputs if p.required],
    }


def build_schema() -> dict:
    from kms_iac.provider.resources import HANDLERS

    return {
        "name": PACKAGE,
        "version": VERSION,
        "displayName": "kms-iac",
        "description": "AWS KMS keys as code, against a bundled local KMS backend or real AWS.",
        "config": {"variables": CONFIG},
        "provider": {"description": "The kms-iac provider.", "inputProperties": CONFIG, "properties": {}},
        "resources": {token: resource_schema(h.spec) for token, h in HANDLERS.items()},
        "functions": {"kms-iac:index:getCallerIdentity": {
            "description": "The AWS account, Region and partition the provider's KMS target acts in.",
            "outputs": {"properties": {"accountId": {"type": "string"}, "region": {"type": "string"},
                                       "partition": {"type": "string"}},
                        "required": ["accountId", "region", "partition"]},
        }},
        "language": {"python": {"packageName": "kms_iac_sdk"}},
    }
