"""The CUDA path (``pytest -m gpu`` on a machine with a GPU; ``benchmarks/gpu_check.sh`` runs these).

Deselected by ``make test`` (marker ``gpu``); each test also skips itself when no CUDA device is
visible, so ``pytest -m gpu`` on a CPU machine says why instead of failing.
"""

import pytest
import torch

from ccrs.config import load_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")]
TINY = ["recommender.entity_dim=16", "recommender.user_dim=16", "recommender.n_heads=2", "rec_train.max_epochs=1",
        "rec_meta.meta_batch_size=4"]


def test_a_checkpoint_trained_on_cuda_loads_on_a_cpu_host(synth_prepared, tmp_path):
    from ccrs.checkpoint import load_checkpoint
    from ccrs.train.rec_trainer import train_recommender

    train_recommender(load_config(None, TINY), synth_prepared, "user", 0, str(tmp_path / "r"), progress=False,
                      device="cuda")
    state = load_checkpoint(str(tmp_path / "r" / "best.pt"), "cpu")["state_dict"]
    assert {t.device.type for t in state.values()} == {"cpu"}


def test_a_recommender_meta_step_on_cuda_matches_cpu(synth_prepared):
    from ccrs.meta.maml import meta_step
    from ccrs.meta.rec_training import RecMetaTraining

    cfg = load_config(None, TINY)
    losses = {}
    for device in ("cpu", "cuda"):
        training = RecMetaTraining(cfg, synth_prepared, 0, device=device)
        users = training.meta_batches(1)[0]
        stats = meta_step(training.maml, [training.task(u) for u in users], training.optimizer,
                          cfg.rec_meta.grad_clip, None)
        losses[device] = stats["query_loss"]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-3)
