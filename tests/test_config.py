import pytest

from ccrs.config import CCRSConfig, ConfigError, dump_config, load_config


def test_defaults_are_the_papers():
    cfg = CCRSConfig()
    assert cfg.recommender.entity_dim == 128
    assert cfg.recommender.n_layers == 1 and cfg.recommender.n_heads == 4
    assert cfg.generator.word_dim == 300 and cfg.generator.n_styles == 4
    assert (cfg.rec_meta.inner_lr, cfg.rec_meta.outer_lr) == (0.006, 0.003)
    assert (cfg.dial_meta.inner_lr, cfg.dial_meta.outer_lr) == (0.0003, 0.001)
    assert cfg.rec_meta.optimizer == "adam" and cfg.rec_meta.grad_clip == 0.1


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("recommender:\n  n_layers: 2\ndata:\n  kg_format: kgsf\n")
    cfg = load_config(path, ["recommender.n_layers=3", "rec_meta.first_order=true", "data.extra_stopwords=foo,bar"])
    assert cfg.recommender.n_layers == 3
    assert cfg.data.kg_format == "kgsf"
    assert cfg.rec_meta.first_order is True
    assert cfg.data.extra_stopwords == ("foo", "bar")
    assert cfg.recommender.entity_dim == 128  # untouched default


def test_round_trip(tmp_path):
    cfg = load_config(None, ["seed=5", "generator.n_styles=6"])
    path = tmp_path / "dump.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("recommender.n_layerz=2", "recommender.n_layerz"),
        ("recommender.n_layers=two", "recommender.n_layers: expected an integer"),
        ("recommender.n_layers=1.5", "expected an integer"),
        ("rec_meta.first_order=maybe", "rec_meta.first_order: expected true/false"),
        ("recommender.max_in_edges=-1", "recommender.max_in_edges must be >= 0"),
        ("nosection.x=1", "nosection"),
        ("no_equals_sign", "key=value"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  kg_fromat: kgsf\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*data\.kg_fromat"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_configs_are_frozen():
    cfg = CCRSConfig()
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]


def test_overriding_one_key_keeps_the_sections_own_defaults():
    from ccrs.config import load_config

    cfg = load_config(None, ["dial_meta.meta_batch_size=4"])
    assert cfg.dial_meta.meta_batch_size == 4
    assert cfg.dial_meta.inner_lr == 0.0003 and cfg.dial_meta.outer_lr == 0.001  # not rec_meta's 0.006 / 0.003
    assert "decoder*" in cfg.dial_meta.outer_only
