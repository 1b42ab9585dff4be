"""The generator as MAML tasks: parameter split, task sets, meta-test adaptation."""

import torch

from ccrs.config import load_config
from ccrs.meta.gen_training import GenMetaTraining
from tests.conftest import TINY_GEN


def _training(prepared, rec_ckpt, *extra):
    cfg = load_config(None, [*TINY_GEN, "dial_meta.meta_batch_size=4", "dial_meta.epochs=2", *extra])
    return GenMetaTraining(cfg, prepared, 0, rec_ckpt)


def test_inner_parameters_are_the_encoder_and_the_style_embeddings(synth_prepared, synth_rec_ckpt):
    t = _training(synth_prepared, synth_rec_ckpt)
    inner = set(t.maml.inner_names)
    assert "style_bias.styles" in inner and all(n.startswith(("encoder.", "style_bias.styles")) for n in inner)
    assert any(n.startswith("decoder.") for n in t.maml.outer_names)
    assert "token_embedding.weight" in t.maml.outer_names and "style_bias.selector.weight" in t.maml.outer_names
    task = t.task(0)
    adapted = t.maml.adapt(task.support)
    params = dict(t.model.named_parameters())
    changed = {n for n in params if not torch.equal(adapted[n], params[n])}
    assert changed and changed <= inner


def test_tasks_follow_the_users_support_and_query_conversations(synth_prepared, synth_rec_ckpt):
    t = _training(synth_prepared, synth_rec_ckpt, "dial_meta.max_task_samples=3")
    for user in t.users:
        for i in user.support.tolist():
            s = t.data.examples.samples[i]
            assert s.user_id == user.user_id and t.data.conversation_part[s.conversation_id] == "support"
        for i in user.query.tolist():
            assert t.data.conversation_part[t.data.examples.samples[i].conversation_id] == "query"
    assert {u.role for u in t.users} == {"train", "valid", "test"}
    t.epoch = 1
    big = max(t.train_users, key=lambda u: u.support.numel())
    i = t.train_users.index(big)
    assert len(t.task(i).support) == min(3, big.support.numel())
    t.epoch = 2  # a fresh draw each epoch
    draws = {tuple(t.task(i).support.sample_ids.tolist()) for t.epoch in range(1, 6)}
    assert len(draws) > 1 or big.support.numel() <= 3


def test_meta_epochs_lower_the_query_loss_and_meta_test_scores_every_query_sample(synth_prepared, synth_rec_ckpt):
    t = _training(synth_prepared, synth_rec_ckpt, "dial_meta.epochs=3", "dial_meta.outer_lr=0.003")
    losses = [t.train_epoch()["query_loss"] for _ in range(3)]
    assert losses[-1] < losses[0]
    report = t.evaluate("test", generate_responses=True)
    n_query = sum(u.query.numel() for u in t.users if u.role == "test")
    assert len(report.records) == n_query
    assert report.metrics()["ppl"] > 1


def test_warm_start_from_another_variant_copies_the_shared_seq2seq(synth_prepared, synth_rec_ckpt, tmp_path):
    from ccrs.meta.gen_training import warm_start
    from ccrs.models.generator import Generator

    t = _training(synth_prepared, synth_rec_ckpt)
    donor_cfg = load_config(None, [*TINY_GEN, "generator.variant=kbrd_gen"]).generator
    donor = Generator(donor_cfg, len(t.data.tokenizer), t.user_dim)
    copied = warm_start(t.model, donor.state_dict())
    assert "encoder.layers.0.linear1.weight" in copied and not any(k.startswith(("style_bias", "user_bias")) for k in copied)
    assert torch.equal(t.model.token_embedding.weight, donor.token_embedding.weight)
    other = Generator(load_config(None, ["generator.word_dim=8", "generator.n_heads=2"]).generator, 5, 3)
    import pytest

    with pytest.raises(ValueError, match="shares no parameter"):
        warm_start(t.model, {k: v for k, v in other.state_dict().items() if k != "positions"})


def test_second_order_meta_step_through_attention_without_dropout(synth_prepared, synth_rec_ckpt):
    """With dropout 0 PyTorch picks a fused SDPA kernel that has no double backward (pytorch #116350);
    MAML runs the task on the math kernel, so second order works (and matches it, up to float error)."""
    from ccrs.meta.maml import meta_step

    t = _training(synth_prepared, synth_rec_ckpt, "generator.dropout=0.0")
    assert not t.maml.first_order
    t.model.train()
    opt = torch.optim.SGD(t.model.parameters(), lr=0.0)
    stats = meta_step(t.maml, [t.task(0)], opt)
    assert stats["tasks"] == 1 and torch.isfinite(torch.tensor(stats["query_loss"]))
    grads = [p.grad for p in t.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
