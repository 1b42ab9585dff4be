"""``AdaptationStore`` with an archive: a restarted store (a new process over the same archive) loses no
adaptation, evicted parameters come back from the archive, and tags never match across restarts.
The deployment class is used directly (no Serve): the restart under load is in test_failover.py."""

import asyncio

import torch

from serve.deployments import AdaptationStore

Store = AdaptationStore.func_or_class


def _params(seed: int) -> dict[str, torch.Tensor]:
    return {"user_emb.weight": torch.randn(3, 4, generator=torch.Generator().manual_seed(seed))}


async def _started(config: dict) -> Store:
    store = Store()
    await store.reconfigure(config)
    return store


def test_a_restarted_store_serves_every_archived_adaptation(tmp_path):
    async def run():
        config = {"cache_size": 2, "archive": str(tmp_path)}
        first = await _started(config)
        for u in range(4):  # more than the memory holds: two are evicted from memory, none from the archive
            await first.put("v1", u, _params(u))
        _, keys = await first.keys_after("r1", -1)
        assert sorted((v, u) for v, u, _ in keys) == [("v1", u) for u in range(4)]
        evicted = await first.get_many("v1", [0, 1, 2, 3])
        assert all(torch.equal(evicted[u]["user_emb.weight"], _params(u)["user_emb.weight"]) for u in range(4))

        second = await _started(config)  # the replica Serve starts after the first one died
        _, keys2 = await second.keys_after("r1", -1)
        assert sorted((v, u) for v, u, _ in keys2) == [("v1", u) for u in range(4)]
        # a Recommender replica labels what it holds with these tags: a new process's tags never equal
        # the old ones, so it refetches instead of trusting a copy of an unknown put
        assert not {t for *_, t in keys} & {t for *_, t in keys2}
        got = await second.get_many("v1", [0, 3, 9])
        assert sorted(got) == [0, 3]
        assert torch.equal(got[3]["user_emb.weight"], _params(3)["user_emb.weight"])
        assert await second.get_many("v2", [0]) == {}  # another checkpoint's key

    asyncio.run(run())


def test_without_an_archive_eviction_and_restart_lose_adaptations():
    async def run():
        store = await _started({"cache_size": 2})
        for u in range(3):
            await store.put("v1", u, _params(u))
        assert sorted(await store.get_many("v1", [0, 1, 2])) == [1, 2]
        assert await store.size() == 2
        fresh = await _started({"cache_size": 2})
        assert await fresh.get_many("v1", [1, 2]) == {}

    asyncio.run(run())


def test_a_put_is_archived_before_it_returns(tmp_path):
    async def run():
        store = await _started({"archive": str(tmp_path)})
        await store.put("v1", 5, _params(5))
        assert (tmp_path / "v1" / "005" / "5.npz").exists()

    asyncio.run(run())
