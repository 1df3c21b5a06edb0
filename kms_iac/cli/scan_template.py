"""``kms-iac scan template PATH...``: the rules over CloudFormation templates and Terraform plans.

Named files must be a CloudFormation template (JSON or YAML) or the JSON of
``terraform show -json PLANFILE``; directories are searched recursively for
``*.json``, ``*.yaml``, ``*.yml`` and ``*.template`` files (``*.tfplan.json`` included),
skipping hidden directories and ``node_modules``. In a directory, a file that is
neither kind is skipped, and so is one that does not parse unless it looks like a
template or plan (mentions ``AWSTemplateFormatVersion``, ``AWS::`` or
``planned_values``/``resource_changes``): a broken template must not pass a gate by
being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import click

from kms_iac.cli.scan import ScanError, config_option, emit, fail_on_option, load_rules_config, output_option

SUFFIXES = (".json", ".yaml", ".yml", ".template")
_SKIP_DIRS = {"node_modules"}
_MARKERS = ("AWSTemplateFormatVersion", "AWS::", "planned_values", "resource_changes")


def _files(path: Path) -> Iterator[tuple[Path, bool]]:
    """(file, named?) for a path given on the command line."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path).parts[:-1]
            if any(part.startswith(".") or part in _SKIP_DIRS for part in rel):
                continue
            if p.is_file() and p.name.lower().endswith(SUFFIXES):
                yield p, False
    elif path.exists():
        yield path, True
    else:
        raise ScanError(f"{path}: no such file or directory; check the path")


def _looks_like_iac(path: Path) -> bool:
    try:
        head = path.read_bytes()[:65536].decode("utf-8", "replace")
    except OSError:
        return False
    return any(m in head for m in _MARKERS)


def collect_views(paths: tuple[Path, ...], config) -> tuple[list, int]:
    """The views of every template and plan under ``paths``, and how many files they came from."""
    from kms_iac.rules.adapters.cloudformation import TemplateError, is_cloudformation, load_template, views_from_template
    from kms_iac.rules.adapters.terraform import is_terraform_plan, views_from_plan

    views: list = []
    scanned = 0
    seen: set[Path] = set()
    for root in paths:
        for file, named in _files(root):
            if file.resolve() in seen:  # named twice (a file and its directory): scanned once
                continue
            seen.add(file.resolve())
            try:
                doc = load_template(file)
            except TemplateError as e:
                if named or _looks_like_iac(file):
                    raise ScanError(f"{e}; fix it, or leave it out of the scanned paths") from None
                continue
            try:
                if is_terraform_plan(doc):
                    views += views_from_plan(doc, str(file), config)
                elif is_cloudformation(doc):
                    views += views_from_template(doc, str(file), config)
                elif named:
                    raise ScanError(f"{file}: neither a CloudFormation template (AWSTemplateFormatVersion or "
                                    "Resources of AWS:: types) nor a Terraform plan; name a template, or the "
                                    "output of `terraform show -json PLANFILE`")
                else:
                    continue
            except TemplateError as e:
                raise ScanError(f"{e}; fix it, or leave it out of the scanned paths") from None
            scanned += 1
    return views, scanned


@click.command("template")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "junit"]), default="text",
              show_default=True, help="Report format.")
@fail_on_option
@config_option
@output_option
@click.option("--show-passed", is_flag=True, help="Text format: list passed and not-applicable checks too.")
def template(paths: tuple[Path, ...], fmt: str, fail_on: str, config_path: Path | None, output: Path | None,
             show_passed: bool) -> None:
    """Check CloudFormation templates and Terraform plans (terraform show -json) against KMS001-KMS016.

    PATH is a file or a directory (searched for *.json, *.yaml, *.yml, *.template).
    Exit status: 0 clean, 1 a finding at or above --fail-on, 2 an error.
    """
    from kms_iac.rules.engine import evaluate

    if not paths:
        raise ScanError("give at least one template, plan or directory to scan (kms-iac scan template PATH...)")
    for p in paths:
        if not p.exists():
            raise ScanError(f"{p}: no such file or directory; check the path")
    config = load_rules_config(paths[0], config_path)
    views, scanned = collect_views(paths, config)
    if not scanned:
        raise ScanError(f"nothing to scan: no CloudFormation template or Terraform plan under "
                        f"{', '.join(map(str, paths))}; name the templates or plans to scan")
    try:
        emit(evaluate(views, config), fmt, fail_on, output, show_passed)
    except OSError as e:
        raise ScanError(f"{output}: cannot write the report: {e.strerror or e}; choose a writable --output") from None
