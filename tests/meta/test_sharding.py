"""Dealing a meta-batch's users to ranks (ccrs/meta/training.py) and the idle share it is judged by."""

import pytest

from ccrs.config import load_config
from ccrs.meta.training import MetaTraining, deal_by_cost, idle_shares


def test_deal_by_cost_balances_and_keeps_every_user_once():
    users = [10, 11, 12, 13, 14, 15]
    costs = [9.0, 1.0, 1.0, 1.0, 4.0, 4.0]
    shares = deal_by_cost(users, costs, 2)
    assert sorted(shares[0] + shares[1]) == users
    loads = [sum(costs[users.index(u)] for u in s) for s in shares]
    assert loads == [10.0, 10.0]  # round robin (count) would give 14 vs 6
    assert shares == [[10, 12], [11, 13, 14, 15]]  # each rank's users in meta-batch order
    assert deal_by_cost(users, [1.0] * 6, 2) == [[10, 12, 14], [11, 13, 15]]  # equal costs: equal counts


def test_idle_share_is_the_waiting_share():
    assert idle_shares([[1.0, 2.0], [1.0, 1.0]]) == [0.0, pytest.approx(0.25)]


class _Costly(MetaTraining):
    """Only the schedule is exercised: no model."""

    def __init__(self, rank, world, sharding, costs):
        self.cfg = load_config(None, [f"rec_meta.sharding={sharding}", "rec_meta.meta_batch_size=5"])
        self.meta_cfg, self.rank, self.world_size, self.n_train_users = self.cfg.rec_meta, rank, world, len(costs)
        self.costs = costs

    def task_cost(self, i):
        return self.costs[i]


@pytest.mark.parametrize("sharding", ["cost", "count"])
def test_ranks_cover_each_meta_batch_once(sharding):
    costs = [float(1 + (i * 7) % 5) for i in range(23)]
    per_rank = [_Costly(r, 2, sharding, costs).meta_batches(3) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 4  # 23 // 5 meta-steps on every rank
    seen = [u for r in per_rank for batch in r for u in batch]
    assert len(seen) == len(set(seen))
    assert len(seen) == (20 if sharding == "cost" else 16)  # count drops 5 mod 2 users per meta-batch
