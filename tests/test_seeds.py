"""Random streams: every id is distinct, and streams are independent and reproducible."""

import torch

from distill.seeds import Stream, generator


def test_every_stream_has_its_own_id():
    ids = [int(s) for s in Stream]
    assert len(ids) == len(set(ids))


def test_streams_are_pure_functions_of_seed_id_and_keys():
    draw = lambda *key: torch.rand(4, generator=generator(*key))
    assert torch.equal(draw(0, Stream.BATCH, 3), draw(0, Stream.BATCH, 3))
    different = [draw(0, Stream.BATCH, 3), draw(0, Stream.BATCH, 4), draw(0, Stream.DATA, 3), draw(1, Stream.BATCH, 3)]
    assert len({tuple(d.tolist()) for d in different}) == 4
