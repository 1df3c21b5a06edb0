"""Packages: kms_iac; the top-level components/ directory installed as kms_iac.components; and
the non-Python parts kms-iac runs (checkov checks, the Pulumi policy pack, the Go sources of
the Pulumi CLI, checkov's pins) installed as kms_iac/_bundled/<name>/, so a wheel carries
everything it needs at run time. kms_iac/bundled.py holds that layout and finds the parts in
either place. One optional C extension: SigV4 verification's signature computation
(kms_iac/backend/_sigv4_native.c, built against OpenSSL's libcrypto); where it cannot be built
(no compiler or headers), the install goes on and kms_iac/backend/sigv4.py computes signatures
in Python. (pyproject.toml holds everything else; setuptools' declarative config cannot map
a subpackage to another directory while finding the rest.)"""

import runpy
from pathlib import Path

from setuptools import Extension, find_namespace_packages, setup

LAYOUT = runpy.run_path(str(Path(__file__).resolve().parent / "kms_iac" / "bundled.py"))["LAYOUT"]
BUNDLED = {f"kms_iac._bundled.{name}": (src, data) for name, (src, data) in LAYOUT.items()}

setup(
    # Namespace-aware: kms_iac/backend has no __init__.py, and a plain find_packages() would leave it out.
    packages=find_namespace_packages(include=["kms_iac", "kms_iac.*"], exclude=["*.__pycache__", "kms_iac.cli.new_project"])
    + ["kms_iac.components", *BUNDLED],
    package_dir={"kms_iac.components": "components", **{pkg: src for pkg, (src, _) in BUNDLED.items()}},
    package_data={"kms_iac.components": ["PulumiPlugin.yaml"], "kms_iac.cli": ["new_project/*"],
                  **{pkg: list(data) for pkg, (_, data) in BUNDLED.items() if data}},
    ext_modules=[Extension("kms_iac.backend._sigv4_native", ["kms_iac/backend/_sigv4_native.c"],
                           libraries=["crypto"], extra_compile_args=["-O2"], optional=True)],
)
