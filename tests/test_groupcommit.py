"""The server's group commit: requests waiting while a batch commits go into the next one
together, each gets its own records only after its commit, and a failing request fails
alone. The store here is a stand-in whose calls the test holds and releases; the real
store is exercised by the webhook tests and benchmarks/webhooks.py."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from canary.errors import InvalidEventError
from canary.events import EventDraft, EventRecord
from server.groupcommit import GroupCommit

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def _draft(pid: str) -> EventDraft:
    return EventDraft(
        channel="call",
        target="03-9999-0000",
        occurred_at=T0,
        provider="test",
        payload=pid.encode(),
        provider_id=pid,
    )


class HeldStore:
    """Stores nothing; records each batch, and holds the first call until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, drafts: Sequence[EventDraft]) -> list[EventRecord]:
        pids = [str(d.provider_id) for d in drafts]
        self.batches.append(pids)
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if "bad" in pids:
            raise InvalidEventError("a bad event")
        return [
            EventRecord(
                id=i,
                channel=d.channel,
                provider=d.provider,
                provider_id=d.provider_id,
                occurred_at=d.occurred_at,
                received_at=T0,
                source=d.source,
                target=d.target,
                payload_sha256=d.payload_sha256,
                classification="noise",
                reason="",
                strength="none",
                exports=[],
                details={},
            )
            for i, d in enumerate(drafts)
        ]


def _submit(commit: GroupCommit, pids: list[str], out: dict[str, object]) -> threading.Thread:
    def run() -> None:
        try:
            out[pids[0]] = [r.provider_id for r in commit.record([_draft(p) for p in pids])]
        except InvalidEventError as exc:
            out[pids[0]] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_queued(commit: GroupCommit, count: int) -> None:
    for _ in range(1000):
        if len(commit._queue) == count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} requests never queued")


def test_requests_waiting_on_a_commit_share_the_next_and_get_their_own_records() -> None:
    store = HeldStore()
    commit = GroupCommit(store)
    out: dict[str, object] = {}
    first = _submit(commit, ["a"], out)
    assert store.entered.wait(10)
    waiting = [_submit(commit, ["b"], out), _submit(commit, ["c1", "c2"], out)]
    _wait_queued(commit, 2)
    assert out == {}, "nothing is answered before its commit returns"
    store.release.set()
    for t in [first, *waiting]:
        t.join(10)
    assert store.batches[0] == ["a"]
    assert sorted(store.batches[1]) == ["b", "c1", "c2"]  # one transaction for both requests
    assert out == {"a": ["a"], "b": ["b"], "c1": ["c1", "c2"]}


def test_a_failing_request_fails_alone_and_the_others_of_its_batch_are_stored() -> None:
    store = HeldStore()
    commit = GroupCommit(store)
    out: dict[str, object] = {}
    first = _submit(commit, ["a"], out)
    assert store.entered.wait(10)
    waiting = [_submit(commit, ["bad"], out), _submit(commit, ["d"], out)]
    _wait_queued(commit, 2)
    store.release.set()
    for t in [first, *waiting]:
        t.join(10)
    assert isinstance(out["bad"], InvalidEventError)
    assert out["d"] == ["d"] and out["a"] == ["a"]
    assert sorted(store.batches[1]) == ["bad", "d"]  # tried together, then one by one
    assert ["d"] in store.batches[2:]


def test_a_request_larger_than_a_batch_is_never_split() -> None:
    store = HeldStore()
    store.release.set()
    commit = GroupCommit(store, max_batch=2)
    pids = [f"e{i}" for i in range(5)]
    assert [r.provider_id for r in commit.record([_draft(p) for p in pids])] == pids
    assert store.batches == [pids]
