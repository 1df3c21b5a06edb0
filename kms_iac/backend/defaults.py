"""The local backend's defaults, in a module light enough for the CLI to import at start-up
(the backend core loads botocore's service model)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ACCOUNT = "111122223333"
DEFAULT_REGION = "us-east-1"


def default_data_dir() -> Path:
    return Path(os.environ.get("KMS_IAC_DATA_DIR") or ".kms-iac")
