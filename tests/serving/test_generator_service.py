"""The generator service: a response for free-text turns with slots filled from the ranking, μ returned."""

import pytest
import torch

from ccrs.checkpoint import CheckpointError
from ccrs.serving.generator_service import GeneratorService, Reply
from tests.conftest import write_biased_generator


@pytest.fixture()
def service(tmp_path):
    tok = write_biased_generator(tmp_path / "gen.pt", user_dim=4)
    return GeneratorService.load(str(tmp_path / "gen.pt")), tok


def test_response_fills_slots_with_unmentioned_ranked_items_and_returns_the_mixture(service):
    svc, _tok = service
    replies = [Reply([("seeker", "hello there")], torch.randn(4), ranked_items=[3, 1, 2], mentioned_items=[3])]
    (out,) = svc.respond(replies, {1: "Alien", 2: "Heat", 3: "Up"})
    assert out.tokens[:2] == ["try", "__item__"]
    assert out.text.startswith("Try Alien") and out.items == [1]  # 3 was mentioned: skipped
    assert out.style_mixture is not None and sum(out.style_mixture) == pytest.approx(1, abs=1e-3)


def test_context_is_truncated_to_the_last_tokens(service):
    svc, tok = service
    ids = svc.context_ids([("seeker", "hello there " * 200)])
    assert len(ids) == svc.cfg.generator.max_context_tokens and ids[-1] == tok.end_id


def test_corrupt_generator_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        GeneratorService.load(str(bad))


def test_unknown_words_are_not_shown(tmp_path):
    write_biased_generator(tmp_path / "gen.pt", user_dim=4, biases={"__unk__": 50.0, "great": 40.0})
    (out,) = GeneratorService.load(str(tmp_path / "gen.pt")).respond(
        [Reply([("seeker", "hi")], torch.randn(4), [0], [])], {0: "Up"})
    assert "__unk__" not in out.text and out.text.startswith("Great")
