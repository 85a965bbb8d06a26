from pathlib import Path

import pytest

from distill.config import Config, load_config
from distill.errors import UserError

EXPERIMENTS = Path(__file__).parent.parent / "experiments"


def test_default_config_is_the_digits_experiment():
    assert load_config(None) == load_config(EXPERIMENTS / "digits.yaml")
    assert load_config(None).dataset.name == "digits"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_experiment_file_is_valid(path):
    assert isinstance(load_config(path), Config)


def test_overrides_are_parsed_as_yaml():
    config = load_config(None, ["outer.epochs=5", "model.name=mlp", "model.hidden=[8, 4]", "outer.betas=[0.9, 0.99]"])
    assert config.outer.epochs == 5
    assert config.model.options == {"hidden": [8, 4]}
    assert config.outer.betas == (0.9, 0.99)


def test_unknown_key_names_it_and_the_closest_valid_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("synthetic:\n  stpes: 3\n")
    with pytest.raises(UserError, match=r"unknown key 'synthetic.stpes' \(did you mean 'synthetic.steps'\?\)"):
        load_config(path)


def test_unknown_top_level_key():
    with pytest.raises(UserError, match="unknown key 'outr'.*'outer'"):
        load_config(None, ["outr.lr=1"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("synthetic.steps=-1", "synthetic.steps"),
        ("outer.lr=0", "outer.lr"),
        ("synthetic.n=hello", "synthetic.n"),
        ("init.scheme=glorot", "init.scheme"),
        ("outer.backgrad=magic", "outer.backgrad"),
        ("synthetic.n=15", "cannot be split into 10 equal steps"),
        ("synthetic.label_init=normal", "set synthetic.labels: learned"),
        ("synthetic.freeze_data=true", "learn nothing but the learning rates"),
        ("seed=-1", "seed"),
        ("outer.betas=[1.5, 0.9]", "betas must lie in"),
        ("synthetic.label_file=labels.csv", "label_file goes with label_init: file"),
        ("outer.label_lr=0.1", "outer.label_lr applies to learned labels"),
        ("outer.label_lr=-1", "outer.label_lr"),
        ("outer.clip_grad_norm=0", "outer.clip_grad_norm"),
    ],
)
def test_impossible_values_are_clear_errors(override, message):
    with pytest.raises(UserError, match=message):
        load_config(None, [override])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="key.subkey=value"):
        load_config(None, ["outer.lr"])
    with pytest.raises(UserError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)


def test_file_label_init_needs_a_file():
    with pytest.raises(UserError, match="needs a label_file"):
        load_config(None, ["synthetic.labels=learned", "synthetic.label_init=file"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["init.kind=pretrained_random", "init.train_networks=3"], "need a pool"),
        (["init.kind=pretrained_random", "init.pool=p.pt"], "train_networks"),
        (["init.pool=p.pt"], "init.pool goes with"),
        (["init.kind=pretrained_fixed", "init.pool=p.pt", "init.train_networks=3"], "train_networks"),
        (["pretrain.optimizer=rmsprop"], "pretrain.optimizer"),
    ],
)
def test_pretrained_init_options_must_fit_together(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config(None, overrides)


def test_a_config_and_its_written_yaml_have_one_fingerprint(tmp_path):
    """Defaults are validated too (100 becomes 100.0 in a float field), so the config a run
    writes reads back with the same fingerprint, and a resume matches its checkpoint."""
    import yaml

    config = load_config(None, ["outer.epochs=5", "continual.distill.outer.epochs=4", "method=continual"])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert load_config(tmp_path / "c.yaml").fingerprint() == config.fingerprint()
    assert load_config(None, ["seed=1"]).fingerprint() != load_config(None).fingerprint()


def test_selection_needs_periodic_evaluations():
    with pytest.raises(UserError, match="set eval.every > 0"):
        load_config(None, ["eval.select=best_train"])
