import pytest
import torch
import torch.nn.functional as F

from distill.errors import UserError
from distill.evaluate import trained_networks
from distill.functional import FunctionalNet
from distill.models import build_model
from distill.synthetic import DistilledData, initial_soft_labels, inverse_softplus, read_soft_labels, round_robin_labels


def test_inverse_softplus():
    for y in (1e-4, 0.02, 1.0, 30.0):
        assert F.softplus(torch.tensor(inverse_softplus(y), dtype=torch.float64)).item() == pytest.approx(y, rel=1e-9)


def test_layout_labels_and_learning_rates():
    data = DistilledData.create(20, 2, 3, (1, 8, 8), 10, lr=0.05)
    assert data.x.shape == (2, 10, 1, 8, 8)
    assert data.steps == 2 and data.epochs == 3 and data.n == 20
    assert torch.equal(data.labels, torch.arange(10).repeat(2, 1))
    assert torch.allclose(data.lrs(), torch.full((6,), 0.05))
    steps = list(data.iter_steps())
    assert len(steps) == 6
    assert torch.equal(steps[3][0], data.x[1]) and torch.equal(steps[3][1], data.labels[1])
    assert {n for n, _ in data.named_parameters()} == {"x", "raw_lrs"}


def test_round_robin_labels():
    assert round_robin_labels(5, 3).tolist() == [0, 1, 2, 0, 1]


def test_real_initialisation_copies_samples_of_the_right_class():
    x = torch.arange(30.0).view(30, 1, 1, 1)
    y = torch.arange(30) % 3
    data = DistilledData.create(6, 2, 1, (1, 1, 1), 3, lr=0.01, real=(x, y), generator=torch.Generator().manual_seed(0))
    values = data.x.detach().flatten().long()
    assert torch.equal(values % 3, data.labels.flatten())


def test_indivisible_steps_is_a_user_error():
    with pytest.raises(UserError, match="not divisible"):
        DistilledData.create(10, 3, 1, (1, 8, 8), 10, lr=0.01)


def test_save_load_round_trip_with_weights_only(tmp_path):
    data = DistilledData.create(20, 2, 3, (1, 8, 8), 10, lr=0.05)
    data.save(tmp_path / "d.pt")
    torch.load(tmp_path / "d.pt", weights_only=True)
    loaded = DistilledData.load(tmp_path / "d.pt")
    assert torch.equal(loaded.x, data.x) and torch.equal(loaded.labels, data.labels)
    assert torch.equal(loaded.raw_lrs, data.raw_lrs) and loaded.num_classes == 10


def test_loading_garbage_is_a_user_error(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="corrupt or not a distill file"):
        DistilledData.load(tmp_path / "bad.pt")
    with pytest.raises(UserError, match="distilled data .*missing.pt is missing"):
        DistilledData.load(tmp_path / "missing.pt")


def test_soft_label_initialisations():
    classes = torch.tensor([0, 2, 1])
    assert torch.equal(initial_soft_labels(classes, 3, "one_hot"), torch.eye(3)[classes])
    smoothed = initial_soft_labels(classes, 3, "smoothed", smoothing=0.3)
    assert torch.allclose(smoothed.sum(1), torch.ones(3)) and torch.allclose(smoothed[0], torch.tensor([0.8, 0.1, 0.1]))
    logits = initial_soft_labels(classes, 3, "one_hot", smoothing=0.3, as_logits=True)
    assert torch.allclose(torch.softmax(logits, -1), smoothed)
    normal = initial_soft_labels(classes, 3, "normal", generator=torch.Generator().manual_seed(0))
    assert normal.shape == (3, 3) and not torch.equal(normal, torch.eye(3)[classes])


def test_soft_labels_are_learnable_and_softmax_targets():
    soft = torch.randn(4, 3)
    data = DistilledData.create(4, 2, 1, (1, 2, 2), 3, lr=0.1, soft_labels=soft, label_softmax=True)
    assert data.learns_labels and {n for n, _ in data.named_parameters()} == {"x", "labels", "raw_lrs"}
    assert torch.allclose(data.targets().sum(-1), torch.ones(2, 2))
    assert torch.allclose(next(data.iter_steps())[1], torch.softmax(soft[:2], -1))


def test_read_soft_labels_errors(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("step,index,a,b\n0,0,1.5,-0.5\n")
    assert torch.equal(read_soft_labels(path, 1, 2), torch.tensor([[1.5, -0.5]]))
    with pytest.raises(UserError, match=r"expected \(2, 2\)"):
        read_soft_labels(path, 2, 2)
    path.write_text("step,index,a,b\n0,0,x,y\n")
    with pytest.raises(UserError, match="does not hold a label matrix"):
        read_soft_labels(path, 1, 2)
    with pytest.raises(UserError, match="no file"):
        read_soft_labels(tmp_path / "missing.csv", 1, 2)


@pytest.mark.parametrize("softmax", [False, True])
def test_replay_trains_a_module_as_the_held_out_evaluation_does(softmax):
    torch.manual_seed(0)
    soft = initial_soft_labels(round_robin_labels(6, 3), 3, "normal", as_logits=softmax)
    data = DistilledData.create(6, 3, 2, (1, 4, 4), 3, lr=0.3, soft_labels=soft, label_softmax=softmax)
    data.raw_lrs.data += torch.linspace(-1, 1, 6)  # a different rate for every step
    model = build_model("mlp", (1, 4, 4), 3, hidden=[8])
    net = FunctionalNet.of(model)
    theta0 = net.flatten(dict(model.named_parameters())).detach()
    expected = trained_networks(net, data, theta0[None])[0]
    assert data.replay(model) is model
    assert torch.allclose(net.flatten(dict(model.named_parameters())), expected, atol=1e-6)
    assert not torch.allclose(expected, theta0)


def test_as_dataset_holds_the_samples_step_after_step_with_their_targets():
    data = DistilledData.create(6, 2, 1, (1, 2, 2), 3, lr=0.1)
    dataset = data.as_dataset()
    assert len(dataset) == 6
    x, y = dataset[4]
    assert torch.equal(x, data.x[1, 1]) and y == data.labels[1, 1]
    assert not dataset.tensors[0].requires_grad
