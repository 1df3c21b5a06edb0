"""Packages: kms_iac, and the top-level components/ directory installed as kms_iac.components
(pyproject.toml holds everything else; setuptools' declarative config cannot map a
subpackage to another directory while finding the rest)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["kms_iac*"]) + ["kms_iac.components"],
    package_dir={"kms_iac.components": "components"},
)
