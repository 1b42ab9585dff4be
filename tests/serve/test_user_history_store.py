"""Histories in the ``AdaptationStore`` (the class used directly, no Serve): durable across a restart,
bounded, appended without losing a concurrent write, and forgotten everywhere, archive included."""

import asyncio

import torch

from ccrs.data.history import HistoryEntry
from ccrs.serving.user_history import history_of
from serve.deployments import HISTORY
from tests.serve.test_adaptation_store import _started


def _conv(*entities: int) -> list[HistoryEntry]:
    return [HistoryEntry(e, 0, 2) for e in entities]


def test_a_restarted_store_keeps_every_history_and_forgetting_removes_the_archive(tmp_path):
    async def run():
        config = {"cache_size": 1, "archive": str(tmp_path)}
        first = await _started(config)
        await first.append_history(7, [_conv(1, 2), _conv(2, 3)])
        await first.append_history(8, [_conv(5)])
        await first.put("v1", 7, {"w": torch.ones(2)})
        second = await _started(config)  # the replica Serve starts after the first one died
        record, versions = await second.user(7)
        assert versions == ["v1"]
        hist = history_of(record)
        assert hist.entities == [1, 2, 3] and hist.count == [1, 2, 1] and hist.age == [2, 1, 1]
        assert history_of((await second.user(8))[0]).entities == [5]

        assert await second.forget(7) == 2  # the history and the adaptation
        assert not any(p.name == "7.npz" for p in tmp_path.rglob("*"))  # nothing left in the archive
        assert await second.user(7) == (None, [])
        third = await _started(config)
        assert await third.user(7) == (None, [])
        assert history_of((await third.user(8))[0]).entities == [5]
        assert await third.forget(7) == 0

    asyncio.run(run())


def test_concurrent_appends_of_one_user_lose_nothing_and_the_bound_holds(tmp_path):
    async def run():
        store = await _started({"archive": str(tmp_path), "history_max_conversations": 4})
        await asyncio.gather(*(store.append_history(3, [_conv(100 + i)]) for i in range(10)))
        record, _ = await store.user(3)
        assert sorted(history_of(record).entities) == [106, 107, 108, 109]  # the newest 4 conversations
        _, keys = await store.keys_after("r", -1)
        assert (HISTORY, 3) in {(v, u) for v, u, _ in keys}

    asyncio.run(run())
