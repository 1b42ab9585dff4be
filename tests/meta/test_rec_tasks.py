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


def test_second_order_meta_gradient_is_finite_with_empty_contexts(synth_prepared):
    """Regression: an all-padding context row once produced NaN in the second-order gradient."""
    from ccrs.data.rec_examples import RecBatch
    from ccrs.meta import MetaTask

    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    parts, users = rec_parts(ds, "user", 0, 64, kg)
    batch = parts["train"].batch(torch.arange(6))
    mask = batch.context_mask.clone()
    mask[:3] = False  # three samples with nothing mentioned yet
    support = RecBatch(**{**batch.__dict__, "context_mask": mask})
    torch.manual_seed(0)
    model = build_recommender(RecommenderConfig(entity_dim=16, user_dim=8), kg, len(users))
    maml = MAML.from_config(model, rec_loss, MetaConfig())
    loss, _ = maml.task_loss(MetaTask(0, support, batch))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_meta_test_scores_users_without_support_samples(synth_prepared):
    from ccrs.meta.rec_tasks import UserTask

    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    parts, users = rec_parts(ds, "user", 0, 64, kg)
    task_set = RecTaskSet.from_dataset(ds, 0, kg, users)
    first = task_set.of_role("test")[0]
    task_set.users[task_set.users.index(first)] = UserTask(first.user_id, "test", torch.zeros(0, dtype=torch.long),
                                                           first.query)
    model = build_recommender(RecommenderConfig(entity_dim=16, user_dim=8), kg, len(users))
    preds = meta_predict(MAML.from_config(model, rec_loss, MetaConfig()), task_set, "test")
    assert sorted(preds.sample_ids.tolist()) == sorted(parts["test"].sample_ids.tolist())
