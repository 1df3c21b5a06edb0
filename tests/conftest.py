from __future__ import annotations

import os

import pytest

from kms_iac.backend.clock import ManualClock
from kms_iac.backend.core import Backend
from kms_iac.backend.embedded import embedded_client
from tests.helpers import NO_CLIENT_VALIDATION, ServerProcess

# Never let a developer's real AWS settings leak into tests.
for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_SESSION_TOKEN"):
    os.environ.pop(var, None)
os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIAKMSIACTEST000001")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test-secret")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_790_000_000.0)


@pytest.fixture
def backend(tmp_path, clock):
    b = Backend(tmp_path / "kms", clock=clock)
    yield b
    b.close()


@pytest.fixture
def embedded(backend):
    """A boto3 KMS client served in-process, on a manual clock."""
    return embedded_client(backend=backend, config=NO_CLIENT_VALIDATION)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server for the session (tests make their own keys), with a movable clock."""
    srv = ServerProcess(tmp_path_factory.mktemp("server-data"), "--clock-control").start()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(params=["embedded", "server"])
def kms(request, tmp_path):
    """The same tests through both front doors."""
    if request.param == "embedded":
        b = Backend(tmp_path / "kms")
        yield embedded_client(backend=b, config=NO_CLIENT_VALIDATION)
        b.close()
    else:
        yield request.getfixturevalue("server").client()
