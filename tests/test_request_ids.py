"""Request and event ids: random version-4 UUIDs in their canonical text, never repeated,
and never shared by forked workers (each draws its own randomness after the fork)."""

from __future__ import annotations

import os
import re
import uuid

from kms_iac.backend.context import RequestContext, _uuid4

CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_ids_are_canonical_random_uuid4s_and_unique() -> None:
    ids = [_uuid4() for _ in range(5000)]  # across many refills of the random text
    assert len(set(ids)) == len(ids)
    for text in ids:
        assert CANONICAL.match(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    # every variant digit appears: the variant nibble keeps two random bits
    assert {text[19] for text in ids} == set("89ab")


def test_a_context_has_two_distinct_ids() -> None:
    ctx = RequestContext.root("111122223333", "us-east-1")
    assert ctx.principal_arn == "arn:aws:iam::111122223333:root"
    assert ctx.request_id != ctx.event_id and CANONICAL.match(ctx.request_id) and CANONICAL.match(ctx.event_id)


def test_forked_processes_never_hand_out_the_parents_ids() -> None:
    _uuid4()  # the parent holds unused random digits now
    pipes = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, "\n".join(_uuid4() for _ in range(50)).encode())
            os._exit(0)
        os.close(write)
        pipes.append((pid, read))
    mine = [_uuid4() for _ in range(50)]
    children = []
    for pid, read in pipes:
        with os.fdopen(read) as f:
            children.append(f.read().split("\n"))
        os.waitpid(pid, 0)
    assert len(children[0]) == len(children[1]) == 50
    assert not set(mine) & set(children[0]) and not set(mine) & set(children[1])
    assert not set(children[0]) & set(children[1])
