"""Errors a user can fix (distill.errors): the "did you mean" hint and the unknown-name message."""

from distill.errors import DivergenceError, UserError, closest, unknown


def test_closest_suggests_the_nearest_name_or_nothing():
    assert closest("mnsit", ["cifar10", "mnist", "svhn"]) == " (did you mean 'mnist'?)"
    assert closest("zzzz", ["cifar10", "mnist", "svhn"]) == ""
    assert closest("mnist", []) == ""


def test_unknown_names_the_kind_the_hint_and_every_choice_sorted():
    error = unknown("model", "lenett", {"mlp": 1, "lenet": 2, "convnet": 3})
    assert isinstance(error, UserError)
    assert str(error) == "unknown model 'lenett' (did you mean 'lenet'?); choose one of: convnet, lenet, mlp"
    assert str(unknown("dataset", "zzzz", ("usps", "digits"))) == "unknown dataset 'zzzz'; choose one of: digits, usps"


def test_a_divergence_is_not_a_user_error():
    """The CLI exits 2 for a UserError and 1 for a divergence: neither may catch the other."""
    assert issubclass(DivergenceError, RuntimeError)
    assert not issubclass(DivergenceError, UserError) and not issubclass(UserError, DivergenceError)
