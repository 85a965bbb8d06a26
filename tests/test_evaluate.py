import pytest
import torch

from distill.evaluate import Accuracy, accuracies, evaluate
from distill.functional import FunctionalNet
from distill.models import build_model
from distill.synthetic import DistilledData
from distill.unroll import train


def test_accuracies_match_a_loop_over_models():
    torch.manual_seed(0)
    net = FunctionalNet.of(build_model("mlp", (1, 4, 4), 3, hidden=[5]))
    thetas = torch.randn(4, net.num_params)
    x, y = torch.randn(50, 1, 4, 4), torch.randint(3, (50,))
    expected = torch.stack([(net.logits(t, x).argmax(-1) == y).float().mean() for t in thetas])
    assert torch.allclose(accuracies(net, thetas, x, y, batch_size=7), expected)



@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_accuracies_of_normalised_convnets_match_a_loop(norm):
    torch.manual_seed(0)
    net = FunctionalNet.of(build_model("convnet", (1, 8, 8), 3, width=4, depth=2, norm=norm))
    thetas = torch.randn(net.num_params).expand(3, -1)  # as a fixed initialisation's held-out networks
    x = torch.randn(20, 8, 8, 1).permute(0, 3, 1, 2)  # strides (64, 1, 8, 1), as the digits loader makes them
    y = torch.randint(3, (20,))
    with torch.no_grad():
        expected = torch.stack([(net.logits(t, x).argmax(-1) == y).float().mean() for t in thetas])
    assert torch.allclose(accuracies(net, thetas, x, y, batch_size=20), expected)

def test_train_follows_the_steps_and_their_own_learning_rates():
    """θ_{t+1} = θ_t − η_t ∇ℓ(x_{t mod S}; θ_t), by plain autograd on one model at a time."""
    torch.manual_seed(0)
    net = FunctionalNet.of(build_model("mlp", (1, 4, 4), 3, hidden=[5]))
    x, labels = torch.randn(2, 3, 1, 4, 4), torch.randint(3, (2, 3))
    lrs = torch.tensor([0.5, 0.01, 0.3, 0.02])  # distinct, so a wrong index shows
    thetas = torch.randn(3, net.num_params)
    expected = []
    for theta in thetas:
        for t in range(4):
            theta = theta.detach().requires_grad_()
            loss = torch.nn.functional.cross_entropy(net.logits(theta, x[t % 2]), labels[t % 2])
            theta = theta - lrs[t] * torch.autograd.grad(loss, theta)[0]
        expected.append(theta.detach())
    assert torch.allclose(train(net, thetas, x, labels, lrs), torch.stack(expected), atol=1e-6)


def test_evaluate_reports_before_and_after_for_every_network():
    torch.manual_seed(0)
    net = FunctionalNet.of(build_model("mlp", (1, 4, 4), 3, hidden=[5]))
    data = DistilledData.create(6, 2, 2, (1, 4, 4), 3, lr=0.5)
    with torch.no_grad():
        data.raw_lrs.copy_(torch.randn(4))
    thetas = torch.randn(3, net.num_params)
    x, y = torch.randn(40, 1, 4, 4), torch.randint(3, (40,))
    result = evaluate(net, data, thetas, x, y, batch_size=16)
    trained = train(net, thetas, data.x.detach(), data.labels, data.lrs().detach())
    assert abs(result.test_acc.mean - accuracies(net, trained, x, y, 40).mean().item()) < 1e-6
    assert abs(result.before.mean - accuracies(net, thetas, x, y, 40).mean().item()) < 1e-6
    assert result.test_acc.n == 3 and result.before.n == 3


def test_accuracy_summary():
    acc = Accuracy.of(torch.tensor([0.5, 0.7]))
    assert acc.as_dict() == {"mean": acc.mean, "std": acc.std, "n": 2}
    assert abs(acc.std - 0.1) < 1e-6
    assert str(acc) == "60.00% ± 10.00 (n=2)"
