import torch

from ccrs.nn.intention_encoder import IntentionEncoder
from ccrs.nn.turn_encoder import TurnEncoder


def test_turn_weights_sum_to_one_and_ignore_padding():
    torch.manual_seed(0)
    enc = TurnEncoder(8, max_turns=10)
    turns = torch.tensor([[0, 2, 5, 0], [1, 1, 0, 0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    w = enc(turns, torch.tensor([6, 3]), mask)
    assert torch.allclose(w.sum(1), torch.ones(2)) and (w[~mask] == 0).all()


def test_recency_mode_is_shift_invariant_and_absolute_is_not():
    torch.manual_seed(0)
    rec, ab = TurnEncoder(8, max_turns=40), TurnEncoder(8, max_turns=40, mode="absolute")
    mask = torch.ones(1, 3, dtype=torch.bool)
    early, late = torch.tensor([[0, 1, 2]]), torch.tensor([[10, 11, 12]])
    assert torch.allclose(rec(early, torch.tensor([3]), mask), rec(late, torch.tensor([13]), mask))
    assert not torch.allclose(ab(early, torch.tensor([3]), mask), ab(late, torch.tensor([13]), mask))
    # distances beyond the table are clipped, not an index error
    assert rec(torch.tensor([[0, 0, 0]]), torch.tensor([500]), mask).shape == (1, 3)


def test_intention_mixes_weights_and_scores_items():
    torch.manual_seed(0)
    enc = IntentionEncoder(4)
    h = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    p = enc(h, mask)
    assert torch.allclose(p[1], h[1, 0])  # one valid entity: p_u is that entity
    turn_w = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p_mixed = enc(h, mask, turn_w)
    mu_r = enc.attention(h, mask)
    assert torch.allclose(p_mixed[0], (0.5 * (mu_r[0] + turn_w[0]))[:, None].mul(h[0]).sum(0))
    items = torch.randn(7, 4)
    assert enc.score(p, items).shape == (2, 7)


def test_empty_context_gives_zero_intention():
    enc = IntentionEncoder(4)
    p = enc(torch.randn(1, 2, 4), torch.zeros(1, 2, dtype=torch.bool))
    assert torch.equal(p, torch.zeros(1, 4))
