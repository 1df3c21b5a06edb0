"""The one kind of error the provider reports to the engine."""

from __future__ import annotations


class ProviderError(Exception):
    """A failure the engine shows against the resource, as one line:
    ``<type> <name>: <what failed>: <why>``; ``code`` is KMS's error code when KMS refused.

    The provider's gRPC service (:mod:`kms_iac.provider.server`) sends the message as is:
    no ``Unexpected <class 'Exception'>:`` prefix, no Python traceback.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
