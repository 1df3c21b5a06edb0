"""rules/checkov/_hcl.py: checkov's Terraform values as kms-iac's adapter reads them (no checkov needed:
the module is plain data in, plain data out, so these run in the project's own environment)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "rules" / "checkov" / "_hcl.py"
_spec = importlib.util.spec_from_file_location("kms_iac_checkov_hcl", _PATH)
hcl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hcl)


def test_unwrap_lists_and_checkov_keys() -> None:
    conf = {"__address__": "aws_kms_key.k", "__start_line__": 1, "enable_key_rotation": [True],
            "tags": [{"tenant": "a"}], "policy": [{"Statement": [{"Action": ["kms:Decrypt"]}]}],
            "operations": [["Decrypt", "Encrypt"]], "block_name_": "aws_kms_key.k"}
    assert hcl.unwrap(conf) == {"enable_key_rotation": True, "tags": {"tenant": "a"},
                                "policy": {"Statement": {"Action": "kms:Decrypt"}},
                                "operations": ["Decrypt", "Encrypt"]}


@pytest.mark.parametrize("value", [
    "data.aws_iam_policy_document.key.json", "var.policy", "local.tags", "module.keys.arn",
    "aws_kms_key.k.arn", "aws_kms_key.k[0].arn", "${var.x}", "arn:aws:iam::${var.account}:root",
    "arn:aws:iam::data.aws_caller_identity.other.arn:root", {"Principal": {"AWS": ["x", "var.admin"]}},
    "each.value", "count.index",
])
def test_unrendered_references_are_unresolved(value) -> None:
    assert hcl.unresolved(value)


@pytest.mark.parametrize("value", [
    "arn:aws:iam::111122223333:root", "alias/tenants/acme", "kms:Decrypt", "s3.us-east-1.amazonaws.com",
    {"Version": "2012-10-17", "Statement": [{"Resource": "*"}]}, True, 30, None, "tenant-a.example.com",
])
def test_plain_values_are_resolved(value) -> None:
    assert not hcl.unresolved(value)


def test_account_partition_and_region_data_sources_are_filled_in() -> None:
    doc = {"Principal": {"AWS": [
        "arn:aws:iam::data.aws_caller_identity.current.account_id:root",
        "arn:${data.aws_partition.p.partition}:iam::${data.aws_caller_identity.me.account_id}:role/App"]},
        "Condition": {"StringEquals": {"kms:ViaService": "s3.data.aws_region.r.name.amazonaws.com"}}}
    got = hcl.fill_known(doc, "123456789012")
    assert got["Principal"]["AWS"] == ["arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:role/App"]
    assert got["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert not hcl.unresolved(got)


@pytest.mark.parametrize("value,key", [
    ("aws_kms_key.k.key_id", "aws_kms_key.k"), ("${aws_kms_key.k.arn}", "aws_kms_key.k"),
    ("aws_kms_key.k[0].id", "aws_kms_key.k"), ("aws_kms_external_key.imp.id", "aws_kms_external_key.imp"),
    ("module.m.aws_kms_key.k.arn", "module.m.aws_kms_key.k"), ("aws_kms_key.k", "aws_kms_key.k"),
    ("var.key_id", None), ("1234abcd-12ab-34cd-56ef-1234567890ab", None), (["aws_kms_key.k.id"], None),
])
def test_key_references(value, key) -> None:
    assert hcl.key_reference(value) == key


def test_addresses() -> None:
    assert hcl.without_instance_key('module.t["a"].aws_kms_key.k[0]') == "module.t.aws_kms_key.k"
    assert hcl.module_prefix('module.t["a"].module.u.aws_kms_alias.a') == "module.t.module.u."
    assert hcl.module_prefix("aws_kms_alias.a") == ""


class _Rustworkx:
    """The shape of checkov's default graph: nodes() are (index, attributes) payloads."""

    def __init__(self, nodes: list[dict]) -> None:
        self._nodes = list(enumerate(nodes))

    def node_indices(self) -> list[int]:
        return [i for i, _ in self._nodes]

    def nodes(self) -> list:
        return self._nodes


def test_graph_links_keys_to_aliases_policies_grants_and_valueless_variables() -> None:
    graph = _Rustworkx([
        {"block_type_": "resource", "resource_type": "aws_kms_key", "__address__": "aws_kms_key.k",
         "rendering_breadcrumbs_": {"tags": [{"type": "variable", "name": "tags", "path": "/m.tf"}]}},
        {"block_type_": "resource", "resource_type": "aws_kms_alias", "__address__": "aws_kms_alias.a",
         "name": "alias/a", "target_key_id": "aws_kms_key.k.key_id"},
        {"block_type_": "resource", "resource_type": "aws_kms_alias", "__address__": "aws_kms_alias.b",
         "name": "var.alias_name", "target_key_id": "aws_kms_key.k.arn"},
        {"block_type_": "resource", "resource_type": "aws_kms_key_policy", "__address__": "aws_kms_key_policy.p",
         "key_id": "aws_kms_key.k.id", "policy": {"Statement": [{"Principal": {
             "AWS": "arn:aws:iam::data.aws_caller_identity.c.account_id:root"}}]}},
        {"block_type_": "resource", "resource_type": "aws_kms_grant", "__address__": "module.m.aws_kms_grant.g",
         "key_id": "aws_kms_key.inner.key_id", "grantee_principal": "arn:aws:iam::111122223333:role/App"},
        {"block_type_": "variable", "block_name_": "tags", "file_path_": "/m.tf"},
        {"block_type_": "variable", "block_name_": "region", "file_path_": "/m.tf", "default": "us-east-1"},
    ])
    links = hcl.GraphLinks(graph, "123456789012")
    assert links.keys == {"aws_kms_key.k"}
    assert links.aliases["aws_kms_key.k"] == ["alias/a", "aws_kms_alias.b (name known after apply)"]
    assert links.policies["aws_kms_key.k"]["policy"]["Statement"]["Principal"]["AWS"] == \
        "arn:aws:iam::123456789012:root"
    assert list(links.grants) == ["module.m.aws_kms_key.inner"]  # a reference inside a module stays in it
    assert links.from_valueless_variable("aws_kms_key.k", "tags")
    assert not links.from_valueless_variable("aws_kms_key.k", "policy")
    assert hcl.GraphLinks(None, "123456789012").aliases == {}
