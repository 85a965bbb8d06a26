import shutil
import urllib.parse
import urllib.request

import pooch
import pytest

from distill.config import load_config

# A run small enough for the test suite: digits, a small MLP, a few iterations.
QUICK = [
    "model.name=mlp",
    "model.hidden=[32]",
    "synthetic.n=20",
    "synthetic.steps=2",
    "synthetic.epochs=2",
    "outer.epochs=6",
    "outer.decay_epochs=2",
    "eval.models=4",
    "run.log_every=2",
    "run.checkpoint_every=3",
    "run.progress=false",
    "run.device=cpu",
]

# A continual run small enough for the suite: a 3-task permuted-digits stream, a small MLP.
TINY_CONTINUAL = [
    "method=continual",
    "model.name=mlp",
    "model.hidden=[32]",
    "init.scheme=default",
    "run.progress=false",
    "run.device=cpu",
    "continual.stream.tasks=3",
    "continual.stream.samples_per_task=300",
    "continual.distill.outer.epochs=4",
    "continual.distill.outer.batch_size=300",
    "continual.distill.outer.models_per_iteration=2",
]


@pytest.fixture
def quick_config():
    def make(*overrides: str):
        return load_config(None, QUICK + list(overrides))

    return make


@pytest.fixture(scope="session")
def digits_pool(tmp_path_factory):
    """Five MLPs (the quick config's model) pretrained on digits for one epoch."""
    from distill.config import load_config
    from distill.pretrain import pretrain

    path = tmp_path_factory.mktemp("pool") / "pool.pt"
    config = load_config(None, ["model.name=mlp", "model.hidden=[32]", "pretrain.networks=5", "pretrain.models_at_once=5",
                                "pretrain.epochs=1", "pretrain.batch_size=128", "pretrain.lr=0.01", "run.progress=false"])
    return path, pretrain(config, path)


def copy_local_file(url: str, output_file: str, _pooch: object) -> None:
    """A pooch downloader for the file:// URLs of the mirrors these tests write."""
    shutil.copyfile(urllib.request.url2pathname(urllib.parse.urlparse(url).path), output_file)


@pytest.fixture
def file_urls(monkeypatch):
    """pooch fetches file:// URLs (its verification and temporary file stay as they are)."""
    retrieve = pooch.retrieve
    monkeypatch.setattr(pooch, "retrieve", lambda url, **kwargs: retrieve(url, downloader=copy_local_file, **kwargs))
