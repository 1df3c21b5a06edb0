"""Interim key states that AWS KMS resolves by itself a few seconds later.

ReplicateKey answers with the new replica in ``Creating`` (Enabled false), and the
replica becomes usable shortly after; UpdatePrimaryRegion puts the old and the new primary
key in ``Updating`` and restores their original state when the update completes (API
reference, UpdatePrimaryRegion). Both are modelled as a row in ``key_transitions``: the key's
state is the interim one until ``due`` on the backend's clock, when the dispatcher's
scheduled work (``Backend._run_due_work``) sets the final state. A key never changes state
behind a caller's back between two requests: the switch happens at the start of the first
request at or after ``due``, like deletion windows and automatic rotation.
"""

from __future__ import annotations

import sqlite3

from kms_iac.backend.store import KeyRecord, Store

CREATING = "Creating"
UPDATING = "Updating"
# How long AWS's asynchronous parts take here, in seconds of the backend's clock. AWS
# documents no figure: replicas are "Creating" briefly, and "the process of updating the
# primary Region might still be in progress for a few more seconds".
REPLICA_CREATION_SECONDS = 2.0
PRIMARY_UPDATE_SECONDS = 2.0


def begin(store: Store, c: sqlite3.Connection, key: KeyRecord, interim: str, final: str, due: float) -> None:
    """Put ``key`` in ``interim`` now and in ``final`` at ``due`` (replacing any pending switch)."""
    c.execute(
        "INSERT OR REPLACE INTO key_transitions (key_id, region, interim, final, due) VALUES (?, ?, ?, ?, ?)",
        (key.key_id, key.region, interim, final, due),
    )
    store.update_key(c, key, state=interim)


def finish_due(c: sqlite3.Connection, now: float) -> None:
    """Give every key whose interim state has ended its final state."""
    rows = c.execute("SELECT key_id, region, interim, final FROM key_transitions WHERE due<=?", (now,)).fetchall()
    for key_id, region, interim, final in rows:
        # only a key still in its interim state moves (a deleted key has no row left to move)
        c.execute("UPDATE keys SET state=? WHERE key_id=? AND region=? AND state=?", (final, key_id, region, interim))
        c.execute("DELETE FROM key_transitions WHERE key_id=? AND region=?", (key_id, region))


def final_state(store: Store, key: KeyRecord) -> str:
    """The state ``key`` will have once its interim state ends (its state when there is none)."""
    row = store.execute("SELECT final FROM key_transitions WHERE key_id=? AND region=?", (key.key_id, key.region))
    return row[0][0] if row else key.state
