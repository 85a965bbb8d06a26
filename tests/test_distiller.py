import torch

from distill.distiller import EpochBatches


def test_each_pass_is_a_permutation_and_batches_are_a_function_of_the_iteration():
    batches = EpochBatches(n=10, batch_size=3, seed=0)
    assert batches.per_epoch == 3
    first_pass = torch.cat([batches.indices(i) for i in range(3)])
    assert len(set(first_pass.tolist())) == 9
    second_pass = torch.cat([batches.indices(i) for i in range(3, 6)])
    assert not torch.equal(first_pass, second_pass)
    fresh = EpochBatches(n=10, batch_size=3, seed=0)
    assert torch.equal(fresh.indices(4), batches.indices(4))
    assert not torch.equal(EpochBatches(n=10, batch_size=3, seed=1).indices(4), batches.indices(4))


def test_batch_larger_than_the_data_is_the_whole_data():
    batches = EpochBatches(n=5, batch_size=1024, seed=0)
    assert batches.per_epoch == 1 and sorted(batches.indices(0).tolist()) == [0, 1, 2, 3, 4]
