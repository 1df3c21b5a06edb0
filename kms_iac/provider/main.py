"""Entry point of ``pulumi-resource-kms-iac``: the engine starts it as a plugin."""

from __future__ import annotations

import sys

from kms_iac.provider import VERSION
from kms_iac.provider.provider import KmsIacProvider
from kms_iac.provider.server import main as serve


def main() -> None:
    args = sys.argv[1:]
    engine = next((a for a in args if not a.startswith("-")), None)
    serve(args, VERSION, KmsIacProvider(engine), engine)


if __name__ == "__main__":
    main()
