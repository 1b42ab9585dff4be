"""The generator on tiny random inputs: shapes, the style bias (Eqs. 9–10), overfitting, decoding."""

import math

import pytest
import torch

from ccrs.config import GeneratorConfig
from ccrs.data.gen_examples import GenBatch
from ccrs.inference.decoding import banned_tokens, beam_search, generate, greedy, nucleus
from ccrs.models.generator import Generator
from ccrs.nn.style_bias import MultiStyleBias

V, D_USER = 40, 8
PAD, START, END = 0, 1, 2


def _cfg(variant="ccrs", **kw):
    base = dict(variant=variant, word_dim=16, n_layers=1, n_heads=2, ffn_dim=16, bias_hidden=16, n_styles=3,
                dropout=0.0, max_context_tokens=12, max_response_tokens=8)
    return GeneratorConfig(**{**base, **kw})


def _batch(b=3, lc=6, lt=5, seed=0, user_vec=None):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randint(4, V, (b, lc), generator=g)
    ctx[0, 4:] = PAD
    out = torch.randint(4, V, (b, lt), generator=g)
    out[:, -1] = END
    r_in = torch.cat([torch.full((b, 1), START), out[:, :-1]], dim=1)
    uv = torch.randn(b, D_USER, generator=g) if user_vec is None else user_vec
    return GenBatch(torch.arange(b), ctx, r_in, out, uv, torch.zeros(b, dtype=torch.long))


@pytest.mark.parametrize("variant", ["ccrs", "only_meta", "kbrd_gen", "transformer"])
def test_shapes_per_variant(variant):
    torch.manual_seed(0)
    model = Generator(_cfg(variant), V, D_USER)
    batch = _batch()
    assert model(batch).shape == (3, 5, V)
    nll, n = model.token_nll(batch)
    assert n == 15 and torch.isfinite(nll)
    has_styles = any(k.startswith("style_bias") for k, _ in model.named_parameters())
    has_user = any(k.startswith("user_bias") for k, _ in model.named_parameters())
    assert has_styles == (variant == "ccrs") and has_user == (variant in ("only_meta", "kbrd_gen"))


def test_style_mixture_is_a_distribution_and_bias_follows_eq_9_10():
    torch.manual_seed(0)
    sb = MultiStyleBias(D_USER, V, n_styles=3, hidden=16)
    p_u = torch.randn(4, D_USER)
    bias, mu = sb(p_u)
    assert mu.shape == (4, 3) and torch.allclose(mu.sum(-1), torch.ones(4))
    manual_mu = torch.softmax(p_u @ sb.selector.weight.t() @ sb.styles, dim=-1)  # softmax(p_u W^C L)
    g_u = manual_mu @ sb.styles.t()  # μ Lᵀ
    manual = sb.to_vocab.out(torch.relu(sb.to_vocab.hidden(g_u)))
    assert torch.allclose(mu, manual_mu, atol=1e-6) and torch.allclose(bias, manual, atol=1e-5)


def test_user_bias_changes_the_logits_and_differs_between_users():
    torch.manual_seed(0)
    model = Generator(_cfg("ccrs"), V, D_USER).eval()
    users = torch.randn(3, D_USER)
    a = model(_batch(user_vec=users))
    b = model(_batch(user_vec=users.flip(0)))
    assert not torch.allclose(a, b)  # same dialogues, users swapped → different next-word distributions
    bias, _ = model.vocab_bias(users)
    assert not torch.allclose(bias[0], bias[1])
    plain = Generator(_cfg("transformer"), V, D_USER).eval()
    assert torch.allclose(plain(_batch(user_vec=users)), plain(_batch(user_vec=users.flip(0))))


def test_a_tiny_model_overfits_a_few_responses():
    torch.manual_seed(0)
    model = Generator(_cfg("ccrs", dropout=0.0), V, D_USER)
    batch = _batch(b=4, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        nll, n = model.token_nll(batch)
        opt.zero_grad()
        (nll / n).backward()
        opt.step()
    assert (nll / n).item() < 0.05
    model.eval()
    out = greedy(model, batch, max_len=8)
    assert out.tokens == [row[:-1].tolist() for row in batch.response_out]  # the responses, without __end__
    assert out.mixture.shape == (4, 3)


def test_beam_width_one_equals_greedy():
    for seed in range(3):
        torch.manual_seed(seed)
        model = Generator(_cfg("ccrs"), V, D_USER).eval()
        batch = _batch(b=4, seed=seed)
        for n in (0, 2, 3):
            assert beam_search(model, batch, 1, 7, n).tokens == greedy(model, batch, 7, n).tokens


def test_beam_search_scores_at_least_as_high_as_greedy():
    torch.manual_seed(1)
    model = Generator(_cfg("kbrd_gen"), V, D_USER).eval()
    batch = _batch(b=3, seed=5)

    def logp(i, seq):
        prefix = torch.tensor([[START, *seq]])
        sub = GenBatch(batch.sample_ids[i : i + 1], batch.context[i : i + 1], prefix, prefix, batch.user_vec[i : i + 1],
                       batch.users[i : i + 1])
        lp = torch.log_softmax(model(sub)[0], -1)
        target = [*seq, END] if len(seq) < 6 else seq
        return sum(lp[t, w].item() for t, w in enumerate(target))

    g, b = greedy(model, batch, 6).tokens, beam_search(model, batch, 4, 6).tokens
    for i in range(3):
        assert logp(i, b[i]) >= logp(i, g[i]) - 1e-4


def test_no_repeated_trigram():
    assert banned_tokens([5, 6, 7, 5, 6], 3) == {7}
    assert banned_tokens([5, 6], 3) == set() and banned_tokens([5, 5], 1) == {5}
    torch.manual_seed(0)
    model = Generator(_cfg("transformer"), V, D_USER).eval()
    with torch.no_grad():  # make the model love token 9: without the rule it repeats 9 9 9 ...
        model.output_bias[9] = 20.0
    batch = _batch(b=2)
    assert greedy(model, batch, 6).tokens[0] == [9] * 6
    for seqs in (greedy(model, batch, 6, 3).tokens, beam_search(model, batch, 3, 6, 3).tokens):
        for s in seqs:
            grams = [tuple(s[i : i + 3]) for i in range(len(s) - 2)]
            assert len(grams) == len(set(grams))


def test_nucleus_sampling_is_seeded_and_tends_to_greedy():
    torch.manual_seed(0)
    model = Generator(_cfg("ccrs"), V, D_USER).eval()
    batch = _batch(b=4, seed=1)
    assert nucleus(model, batch, 7, top_p=0.0, seed=3).tokens == greedy(model, batch, 7).tokens  # nucleus = top-1
    a = nucleus(model, batch, 7, top_p=1.0, seed=5).tokens
    assert a == generate(model, batch, "nucleus", max_len=7, top_p=1.0, seed=5).tokens  # same seed, same text
    draws = {str(nucleus(model, batch, 7, top_p=1.0, seed=s).tokens) for s in range(6)}
    assert len(draws) > 1  # an untrained model is near-uniform: seeds differ
    for seqs in (nucleus(model, batch, 7, top_p=1.0, seed=s, no_repeat_ngram=2).tokens for s in range(3)):
        for seq in seqs:
            assert len(set(zip(seq, seq[1:], strict=False))) == len(seq) - 1  # no bigram twice


def test_sampling_temperature_sharpens_towards_greedy():
    torch.manual_seed(0)
    model = Generator(_cfg("ccrs"), V, D_USER).eval()
    batch = _batch(b=4, seed=1)
    assert nucleus(model, batch, 7, top_p=1.0, seed=3, temperature=0.0).tokens == greedy(model, batch, 7).tokens
    assert nucleus(model, batch, 7, top_p=1.0, seed=3, temperature=1e-4).tokens == greedy(model, batch, 7).tokens
    hot = {str(nucleus(model, batch, 7, top_p=1.0, seed=s, temperature=3.0).tokens) for s in range(4)}
    assert len(hot) == 4  # a hotter distribution: every seed draws something else


def test_min_length_forbids_an_early_end_in_every_decoding():
    torch.manual_seed(0)
    model = Generator(_cfg("transformer"), V, D_USER).eval()
    with torch.no_grad():  # the model wants to stop at once
        model.output_bias[END] = 20.0
    batch = _batch(b=2)
    assert greedy(model, batch, 7).tokens == [[], []]
    for method in ("greedy", "beam", "nucleus"):
        out = generate(model, batch, method, beam_width=2, max_len=7, min_len=3, top_p=0.5).tokens
        assert [len(s) for s in out] == [3, 3], method  # it ends as soon as it may


def test_generator_config_rejects_a_bad_top_p():
    from ccrs.config import ConfigError

    with pytest.raises(ConfigError, match="top_p"):
        _cfg(decoding="nucleus", top_p=1.5)
    with pytest.raises(ConfigError, match="min_response_tokens"):
        _cfg(min_response_tokens=8)  # max_response_tokens is 8


def test_style_balance_penalty_is_zero_when_even_and_log_ns_when_collapsed():
    n = 4
    assert float(MultiStyleBias.balance_penalty(torch.full((5, n), 1 / n))) == pytest.approx(0.0, abs=1e-6)
    one = torch.zeros(5, n)
    one[:, 2] = 1.0
    assert float(MultiStyleBias.balance_penalty(one)) == pytest.approx(math.log(n), rel=1e-4)
    personal = torch.eye(n)  # each response one style, all styles used: balanced on average
    assert float(MultiStyleBias.balance_penalty(personal)) == pytest.approx(0.0, abs=1e-6)


def test_style_temperature_spreads_the_mixture_and_the_penalty_reaches_the_loss():
    torch.manual_seed(0)
    sharp, flat = (Generator(_cfg("ccrs", style_temperature=t), V, D_USER).eval() for t in (1.0, 10.0))
    flat.load_state_dict(sharp.state_dict())
    p_u = torch.randn(6, D_USER) * 5
    ent = lambda mu: float(-(mu * mu.log()).sum(-1).mean())  # noqa: E731
    assert ent(flat.vocab_bias(p_u)[1]) > ent(sharp.vocab_bias(p_u)[1])
    batch = _batch(b=4)
    off = Generator(_cfg("ccrs"), V, D_USER)
    on = Generator(_cfg("ccrs", style_balance=0.5), V, D_USER)
    on.load_state_dict(off.state_dict())
    assert float(off(batch, with_penalty=True)[1]) == 0.0
    logits, pen = on(batch, with_penalty=True)
    assert float(pen) > 0 and torch.allclose(logits, off(batch))
    pen.backward()
    assert on.style_bias.selector.weight.grad.abs().sum() > 0  # the term trains the style selector


def test_style_separation_penalty_is_zero_for_orthogonal_and_one_for_equal_style_biases():
    torch.manual_seed(0)
    bias = MultiStyleBias(D_USER, V, n_styles=3, hidden=16)
    with torch.no_grad():  # F = identity-like: hidden = the styles themselves, out = a copy of them
        bias.to_vocab.hidden.weight.zero_(), bias.to_vocab.hidden.bias.zero_()
        bias.to_vocab.hidden.weight[:D_USER] = torch.eye(D_USER)
        bias.to_vocab.out.weight.zero_(), bias.to_vocab.out.bias.fill_(3.0)  # b₂ is left out of the cosine
        bias.to_vocab.out.weight[:16, :16] = torch.eye(16)
        bias.styles.copy_(torch.eye(D_USER)[:, :3])  # three orthogonal, non-negative styles
    assert float(bias.separation_penalty()) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        bias.styles.copy_(torch.ones(D_USER, 3))
    assert float(bias.separation_penalty()) == pytest.approx(1.0, rel=1e-5)
    assert float(MultiStyleBias(D_USER, V, n_styles=1, hidden=16).separation_penalty()) == 0.0


def test_style_separation_reaches_the_loss_and_its_gradient_moves_the_styles():
    torch.manual_seed(0)
    model = Generator(_cfg("ccrs", style_separation=1.0), V, D_USER)
    _, pen = model(_batch(b=4), with_penalty=True)
    assert float(pen) > 0
    pen.backward()
    assert model.style_bias.styles.grad.abs().sum() > 0


def test_ccrs_with_user_bias_adds_kbrds_bias_to_the_styles():
    torch.manual_seed(0)
    plus = Generator(_cfg("ccrs", style_with_user_bias=True), V, D_USER).eval()
    kbrd = Generator(_cfg("kbrd_gen"), V, D_USER).eval()
    assert Generator(_cfg("ccrs"), V, D_USER).user_bias is None  # the paper: styles only
    assert set(kbrd.state_dict()) <= set(plus.state_dict())  # a kbrd_gen checkpoint warm-starts it whole
    p_u = torch.randn(5, D_USER)
    bias, mu = plus.vocab_bias(p_u)
    assert torch.allclose(bias, plus.style_bias(p_u)[0] + plus.user_bias(p_u), atol=1e-6) and mu.shape == (5, 3)
