"""``python -m kms_iac.toolchain pulumi|checkov``: provide the tool and print its bin directory
as the last (and only) line of stdout; progress and errors go to stderr.

    PULUMI_BIN=$(python -m kms_iac.toolchain pulumi) && export PATH="$PULUMI_BIN:$PATH"
"""

from __future__ import annotations

import sys

from kms_iac.toolchain._common import ToolchainError


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("pulumi", "checkov"):
        print("usage: python -m kms_iac.toolchain pulumi|checkov", file=sys.stderr)
        return 2
    try:
        if argv[0] == "pulumi":
            from kms_iac.toolchain.pulumi_cli import ensure_pulumi

            bin_dir = ensure_pulumi()
        else:
            from kms_iac.toolchain.checkov_env import ensure_checkov

            bin_dir = ensure_checkov()
    except ToolchainError as e:
        print(f"kms-iac: error: {e}", file=sys.stderr)
        return 1
    print(bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
