import torch

from distill.evaluate import Accuracy, accuracies, evaluate
from distill.functional import FunctionalNet
from distill.models import build_model
from distill.synthetic import DistilledData


def test_accuracies_match_a_loop_over_models():
    torch.manual_seed(0)
    net = FunctionalNet.of(build_model("mlp", (1, 4, 4), 3, hidden=[5]))
    thetas = torch.randn(4, net.num_params)
    x, y = torch.randn(50, 1, 4, 4), torch.randint(3, (50,))
    expected = torch.stack([(net.logits(t, x).argmax(-1) == y).float().mean() for t in thetas])
    assert torch.allclose(accuracies(net, thetas, x, y, batch_size=7), expected)


def test_evaluate_trains_each_network_with_the_learned_steps():
    torch.manual_seed(0)
    net = FunctionalNet.of(build_model("mlp", (1, 4, 4), 3, hidden=[5]))
    data = DistilledData.create(6, 2, 2, (1, 4, 4), 3, lr=0.5)
    thetas = torch.randn(3, net.num_params)
    x, y = torch.randn(40, 1, 4, 4), torch.randint(3, (40,))
    result = evaluate(net, data, thetas, x, y)
    trained = []
    for theta in thetas:
        for xs, labels, lr in data.iter_steps():
            theta = theta.detach().requires_grad_()
            (g,) = torch.autograd.grad(net.loss(theta, xs.detach(), labels), theta)
            theta = theta - lr.detach() * g
        trained.append((net.logits(theta.detach(), x).argmax(-1) == y).float().mean())
    assert abs(result.test_acc.mean - torch.stack(trained).mean().item()) < 1e-6
    assert result.test_acc.n == 3 and result.before.n == 3


def test_accuracy_summary():
    acc = Accuracy.of(torch.tensor([0.5, 0.7]))
    assert acc.as_dict() == {"mean": acc.mean, "std": acc.std, "n": 2}
    assert abs(acc.std - 0.1) < 1e-6
    assert str(acc) == "60.00% ± 10.00 (n=2)"
