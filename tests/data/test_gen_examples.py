"""Generation samples line up with the recommender's samples and the conversation parts."""

import torch

from ccrs.config import GeneratorConfig, load_config
from ccrs.data.dataset import PreparedDataset
from ccrs.data.gen_examples import GenExamples, gen_samples
from ccrs.data.rec_examples import COLD_START_USER
from ccrs.data.tokenizer import WordTokenizer


def test_one_sample_per_recommender_turn_with_the_recommenders_context(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    samples = gen_samples(ds)
    turns = ds.table("turns").to_pylist()
    rec_turns = {(t["conversation_id"], t["turn_index"]) for t in turns if t["role"] == "recommender" and t["turn_index"] > 0}
    assert {(s.conversation_id, s.turn_index) for s in samples} == rec_turns
    by_turn = {(t["conversation_id"], t["turn_index"]): t for t in turns}
    rec = {(r["conversation_id"], r["turn_index"]): r for r in ds.table("rec_samples").to_pylist()}
    checked = 0
    for s in samples:
        assert s.response == by_turn[(s.conversation_id, s.turn_index)]["text"]
        assert len(s.context) == s.turn_index and s.context[-1] == by_turn[(s.conversation_id, s.turn_index - 1)]["text"]
        r = rec.get((s.conversation_id, s.turn_index))
        if r is not None:  # same dialogue point → same recommender input
            assert s.context_entity_ids == r["context_entity_ids"]
            assert s.context_entity_turns == r["context_entity_turns"]
            checked += 1
    assert checked > 10


def test_batches_truncate_and_shift(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    samples = gen_samples(ds)[:5]
    tok = WordTokenizer.build([t for s in samples for t in [*s.context, s.response]], 1, "__item__")
    cfg = GeneratorConfig(max_context_tokens=10, max_response_tokens=4)
    ex = GenExamples(samples, tok, {samples[0].user_id: 3}, cfg, user_dim=8)
    b = ex.batch([0, 1, 2])
    assert b.context.shape[1] <= 10 and b.response_out.shape[1] <= 4
    for row in range(3):
        out = b.response_out[row][b.response_out[row] != tok.pad_id]
        assert out[-1] == tok.end_id and b.response_in[row, 0] == tok.start_id
        assert torch.equal(b.response_in[row, 1 : len(out)], out[:-1])
        # the context keeps the *last* tokens, each turn closed by __end__
        full = [i for t in samples[row].context for i in [*tok.encode(t), tok.end_id]]
        assert b.context[row][b.context[row] != tok.pad_id].tolist() == full[-10:]
    assert b.users[0] == 3 and (ex.users[1:] == COLD_START_USER).all() == (samples[1].user_id != samples[0].user_id)
    rb = ex.rec_batch([0, 1], max_context_entities=64)
    assert rb.context_mask.sum(1).tolist() == [len(samples[i].context_entity_ids) for i in (0, 1)]


def test_tokenizer_vocabulary_comes_from_the_training_part_only(synth_prepared, synth_rec_ckpt):
    from ccrs.data.rec_examples import part_of_conversations
    from ccrs.data.tokenizer import tokenize
    from ccrs.train.gen_data import load_gen_data

    cfg = load_config(None, ["generator.min_word_count=1"])
    data = load_gen_data(synth_prepared, 0, cfg, synth_rec_ckpt)
    ds = PreparedDataset.open(synth_prepared)
    parts = part_of_conversations(ds, "user", 0)
    words = {"train": set(), "test": set()}
    for t in ds.table("turns").to_pylist():
        if parts.get(t["conversation_id"]) in words:
            words[parts[t["conversation_id"]]] |= set(tokenize(t["text"]))
    assert set(data.tokenizer.words[5:]) == words["train"] - {"__item__"}
    assert all(len(data.part_index[p]) for p in ("train", "valid", "test"))
    assert data.examples.user_vectors.abs().sum() > 0  # p_u attached
    assert data.top_items.shape == (len(data.examples), 50)
