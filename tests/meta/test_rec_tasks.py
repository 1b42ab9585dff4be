import torch

from ccrs.config import MetaConfig, RecommenderConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.meta import MAML
from ccrs.meta.rec_tasks import RecTaskSet, meta_predict, rec_loss
from ccrs.models import build_recommender


def test_tasks_and_meta_test_use_the_plain_models_samples(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    parts, users = rec_parts(ds, "user", 0, 64, kg)
    task_set = RecTaskSet.from_dataset(ds, 0, kg, users)
    conv_parts = ds.conversation_parts()
    for u in task_set.users:
        assert {conv_parts[task_set.examples.conversation_ids[i]] for i in u.support.tolist()} == {"support"}
        assert {conv_parts[task_set.examples.conversation_ids[i]] for i in u.query.tolist()} == {"query"}
    train = task_set.tasks("train")
    assert train and all(t.support.labels.numel() and t.query.labels.numel() for t in train)
    torch.manual_seed(0)
    model = build_recommender(RecommenderConfig(entity_dim=16, user_dim=8), kg, len(users))
    maml = MAML.from_config(model, rec_loss, MetaConfig())
    for role in ("valid", "test"):
        preds = meta_predict(maml, task_set, role)
        # exactly the query samples the plain models are scored on
        assert sorted(preds.sample_ids.tolist()) == sorted(parts[role].sample_ids.tolist())
    # inner adaptation leaves the embeddings (outer-only by default) alone and changes the rest
    task = train[0]
    adapted = maml.adapt(task.support)
    assert torch.equal(adapted["entity_embedding.weight"], model.entity_embedding.weight)
    assert not torch.equal(adapted["encoder.0.lin_out.weight"], model.encoder[0].lin_out.weight)
