"""Text datasets: tokenizer, vocabulary, GloVe, readers and decoding, on tiny files written here."""

from __future__ import annotations

import gzip
import hashlib
import re
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from distill.datasets import DATASETS, load_dataset, text
from distill.datasets.download import UNVERIFIED_ENV, Remote
from distill.datasets.text import PAD, UNK, build_vocab, encode, nearest_words, read_glove, tokenize
from distill.errors import UserError

DIM = 4
WORDS = ("the", "movie", "was", "great", "bad", "what", "is", "a", "who", ".", "?", "!", "(", ")")
VECTORS = np.random.default_rng(0).normal(size=(len(WORDS), DIM)).astype(np.float32)
GLOVE = dict(zip(WORDS, VECTORS))


# --- tokenizer -----------------------------------------------------------------------------------

# torchtext's basic_english, as torchtext 0.18 implements it.
REFERENCE_PATTERNS = [r"\'", r"\"", r"\.", r"<br \/>", r",", r"\(", r"\)", r"\!", r"\?", r"\;", r"\:", r"\s+"]
REFERENCE_REPLACEMENTS = [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "]


def reference_basic_english(line: str) -> list[str]:
    line = line.lower()
    for pattern, replacement in zip(REFERENCE_PATTERNS, REFERENCE_REPLACEMENTS):
        line = re.sub(pattern, replacement, line)
    return line.split()


@pytest.mark.parametrize(
    "line",
    [
        "Hello, World!",
        "Don't stop; it's \"great\": 9.5/10.<br />(Really?)",
        "  tabs\tand\nnewlines  ",
        'A <BR /> b <br "/> c',
        "what's 3,000.5 ?!",
        "",
    ],
)
def test_tokenize_matches_basic_english(line):
    assert tokenize(line) == reference_basic_english(line)


def test_tokenize_examples():
    assert tokenize("Hello, World!") == ["hello", ",", "world", "!"]
    assert tokenize("It's a \"test\".<br />(Yes)") == ["it", "'", "s", "a", "test", ".", "(", "yes", ")"]
    assert tokenize("a;b:c") == ["a", "b", "c"]


# --- vocabulary and encoding -----------------------------------------------------------------------

SENTENCES = [["b", "a", "c"], ["a", "b", "a"], ["d", "a"], ["<unk>", "e"]]


def test_build_vocab_orders_by_frequency_then_alphabet():
    assert build_vocab(SENTENCES) == (PAD, UNK, "a", "b", "c", "d", "e")


def test_build_vocab_caps():
    assert build_vocab(SENTENCES, max_vocab=4) == (PAD, UNK, "a", "b")
    assert build_vocab(SENTENCES, min_freq=2) == (PAD, UNK, "a", "b")
    assert build_vocab(SENTENCES, max_vocab=2) == (PAD, UNK)
    with pytest.raises(UserError, match="max_vocab"):
        build_vocab(SENTENCES, max_vocab=1)


def test_encode_pads_truncates_and_marks_unknown():
    vocab = (PAD, UNK, "a", "b")
    ids = encode([["a", "b", "z"], ["b"], [], ["a", "a", "a", "a", "b"]], vocab, max_len=4)
    assert ids.dtype == np.int64
    assert ids.tolist() == [[2, 3, 1, 0], [3, 0, 0, 0], [0, 0, 0, 0], [2, 2, 2, 2]]


# --- GloVe ---------------------------------------------------------------------------------------


def glove_text(words=WORDS) -> str:
    return "".join(f"{w} {' '.join(f'{v:.6f}' for v in GLOVE[w])}\n" for w in words)


def write_glove(path: Path, content: str | None = None) -> Path:
    content = glove_text() if content is None else content
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(content.encode()))
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"glove.tiny.{DIM}d.txt", content)
            archive.writestr("README", "not vectors")
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("name", ["glove.txt", "glove.txt.gz", "glove.zip"])
def test_read_glove_formats(tmp_path, name):
    path = write_glove(tmp_path / name)
    vocab = (PAD, UNK, "movie", "absent", "the")
    vectors = read_glove(path, vocab, DIM)
    assert vectors.dtype == np.float32 and vectors.shape == (5, DIM)
    np.testing.assert_allclose(vectors[2], GLOVE["movie"], atol=1e-6)
    np.testing.assert_allclose(vectors[4], GLOVE["the"], atol=1e-6)
    assert not vectors[[0, 1, 3]].any()


def test_read_glove_zip_member(tmp_path):
    path = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("glove.6B.4d.txt", glove_text())
        archive.writestr("glove.6B.2d.txt", "the 1 2\n")
    np.testing.assert_allclose(read_glove(path, (PAD, "the"), DIM)[1], GLOVE["the"], atol=1e-6)
    assert read_glove(path, (PAD, "the"), 2, member="glove.6B.2d.txt")[1].tolist() == [1, 2]
    with pytest.raises(UserError, match="no member 'nope.txt'"):
        read_glove(path, (PAD, "the"), DIM, member="nope.txt")
    with pytest.raises(UserError, match="glove_member"):
        read_glove(path, (PAD, "the"), 3)


def test_read_glove_random_for_missing_words_is_seeded(tmp_path):
    path = write_glove(tmp_path / "glove.txt")
    vocab = (PAD, UNK, "movie", "absent", "other")
    first = read_glove(path, vocab, DIM, missing="random", seed=3)
    again = read_glove(path, vocab, DIM, missing="random", seed=3)
    other = read_glove(path, vocab, DIM, missing="random", seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[3], other[3])
    assert not first[0].any()
    np.testing.assert_allclose(first[2], GLOVE["movie"], atol=1e-6)
    assert first[[1, 3, 4]].all() and np.abs(first[[1, 3, 4]]).max() < 0.6


def test_read_glove_dimension_mismatch(tmp_path):
    path = write_glove(tmp_path / "glove.txt")
    with pytest.raises(UserError, match=rf"glove.txt has {DIM}-dimensional.*embed_dim is 50"):
        read_glove(path, (PAD, "the"), 50)


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("movie 1 2 3", "found 3 numbers"),
        ("movie 1 2 x 4", "could not convert"),
        ("movie 1 2 3 4 5", "5 numbers"),
        ("unused 1 2 3", "found 3 numbers"),  # every line's count is checked, not only the vocabulary's
        ("movie 1 nan 3 4", "nan, infinite or too large"),
        ("movie 1 2 -inf 4", "nan, infinite or too large"),
        ("movie 1 2 3 1e39", "nan, infinite or too large"),  # beyond float32
    ],
)
def test_read_glove_malformed_line(tmp_path, bad_line, reason):
    path = write_glove(tmp_path / "glove.txt.gz", glove_text(("the", "was")) + bad_line + "\n")
    with pytest.raises(UserError, match=rf"glove.txt.gz, line 3: .*{reason}"):
        read_glove(path, (PAD, "movie"), DIM)


@pytest.mark.parametrize("name", ["glove.txt", "glove.txt.gz", "glove.zip"])
@pytest.mark.parametrize("content", ["", "\n \n"])
def test_read_glove_empty_file(tmp_path, name, content):
    path = write_glove(tmp_path / name, content)
    with pytest.raises(UserError, match="holds no vectors") as error:
        read_glove(path, (PAD, UNK, "movie"), DIM)
    assert str(path) in str(error.value)


def test_read_glove_without_a_vocabulary_word(tmp_path):
    path = write_glove(tmp_path / "glove.txt", glove_text(("the", "was")))
    with pytest.raises(UserError, match=r"glove.txt has a vector for none of the 2 vocabulary words \(e.g. 'film'\)"):
        read_glove(path, (PAD, UNK, "film", "cinema"), DIM)
    assert not read_glove(path, (PAD, UNK), DIM).any()  # nothing to look up is not an error


def unreadable_zip(path: Path, members: Sequence[str], encrypted: bool) -> Path:
    """A zip whose members are marked encrypted, or compressed with an unknown method (99)."""
    with zipfile.ZipFile(path, "w") as archive:
        for member in members:
            archive.writestr(member, glove_text())
    raw = bytearray(path.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        for header in re.finditer(re.escape(signature), raw):
            start = header.start() + flags_at
            if encrypted:
                raw[start] |= 1
            else:
                raw[start + 2 : start + 4] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("encrypted", [True, False])
def test_read_glove_unreadable_zip_member(tmp_path, encrypted):
    path = unreadable_zip(tmp_path / "glove.6B.zip", [f"glove.6B.{DIM}d.txt"], encrypted)
    with pytest.raises(UserError, match="cannot read .*glove.6B.zip: unsupported or encrypted zip archive"):
        read_glove(path, (PAD, "the"), DIM)


def test_read_glove_word_with_spaces(tmp_path):
    path = write_glove(tmp_path / "glove.txt", glove_text(("the",)) + ". . . 1 2 3 4\n")
    assert read_glove(path, (PAD, ". . ."), DIM)[1].tolist() == [1, 2, 3, 4]


def test_read_glove_missing_file(tmp_path):
    with pytest.raises(UserError, match="absent.txt"):
        read_glove(tmp_path / "absent.txt", (PAD,), DIM)


# --- nearest words ---------------------------------------------------------------------------------


def test_nearest_words_round_trip():
    vocab = (PAD, UNK, *WORDS)
    embeddings = torch.from_numpy(np.concatenate([np.zeros((2, DIM), np.float32), VECTORS]))
    sentence = ["the", "movie", "was", "great", "!"]
    x = embeddings[[vocab.index(w) for w in sentence]]
    assert nearest_words(x, embeddings, vocab) == sentence
    assert nearest_words(x * 3 + 1e-4, embeddings, vocab) == sentence  # cosine: the scale does not matter
    padded = torch.cat([x, torch.zeros(2, DIM)])
    assert nearest_words(padded, embeddings, vocab) == [*sentence, PAD, PAD]
    batch = torch.stack([padded, padded.flip(0)])[:, None]  # [2, 1, L, D], as a dataset holds it
    assert nearest_words(batch, embeddings, vocab) == [[[*sentence, PAD, PAD]], [[PAD, PAD, *sentence[::-1]]]]
    with pytest.raises(UserError, match="shape"):
        nearest_words(torch.zeros(3, DIM + 1), embeddings, vocab)


# --- datasets --------------------------------------------------------------------------------------

IMDB = {
    "train": {"neg": ["The movie was bad.", "Bad, bad!"], "pos": ["A great movie!<br />Great."]},
    "test": {"neg": ["Was it bad?"], "pos": ["Great (great)"]},
}


def make_imdb(root: Path) -> None:
    for split, labels in IMDB.items():
        for label, reviews in labels.items():
            folder = root / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i, review in enumerate(reviews):
                (folder / f"{i}_{7 + i}.txt").write_text(review)


def load(name: str, root: Path, **options):
    return load_dataset(name, root=root, glove="glove/glove.txt", embed_dim=DIM, **options)


def decode(data, split: str = "train") -> list[str]:
    x = getattr(data, f"{split}_x")
    return [" ".join(w for w in words[0] if w != PAD) for words in nearest_words(x, data.embeddings, data.vocab)]


def test_registry_has_text_datasets():
    assert {"imdb", "sst5", "trec6", "trec50"} <= set(DATASETS)


def test_imdb(tmp_path):
    make_imdb(tmp_path)
    write_glove(tmp_path / "glove" / "glove.txt")
    data = load("imdb", tmp_path, max_len=5)
    assert data.train_x.shape == (3, 1, 5, DIM) and data.test_x.shape == (2, 1, 5, DIM)
    assert data.train_x.dtype == torch.float32
    assert data.train_y.tolist() == [0, 0, 1] and data.test_y.tolist() == [0, 1]
    assert data.class_names == ("negative", "positive") and data.num_classes == 2
    assert data.mean == (0.0,) and data.std == (1.0,) and data.input_shape == (1, 5, DIM)
    assert data.vocab[:4] == (PAD, UNK, "bad", "!")
    assert data.embeddings.shape == (len(data.vocab), DIM)
    np.testing.assert_allclose(data.train_x[0, 0, 1].numpy(), GLOVE["movie"], atol=1e-6)
    assert not data.train_x[1, 0, 4:].any()  # "bad , bad !" is padded with zero vectors
    # "," is not in GloVe: a zero vector, which decodes as <pad>; the third review is truncated.
    assert decode(data) == ["the movie was bad .", "bad bad !", "a great movie ! great"]
    # "it", "?", "(" and ")" are not in the training split's vocabulary: <unk>, a zero vector too.
    assert decode(data, "test") == ["was bad", "great great"]


def test_imdb_missing_and_empty(tmp_path):
    write_glove(tmp_path / "glove" / "glove.txt")
    with pytest.raises(UserError, match=r"aclImdb.*dataset.download: true"):
        load("imdb", tmp_path)
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            (tmp_path / "aclImdb" / split / label).mkdir(parents=True)
    with pytest.raises(UserError, match=r"no examples found in .*aclImdb.train"):
        load("imdb", tmp_path)


SST_TRAIN = [
    "(3 (2 The) (3 (3 movie) (2 (2 was) (4 great))))",
    "(0 (1 (2 A) (1 bad)) (2 (2 -LRB-) (2 \\/) (2 movie) (2 -RRB-)))",
    "(1 (1 Bad) (2 .))",
]
SST_TEST = ["(4 (4 Great) (2 !))", "", "(2 (2 Who) (2 ?))"]


def make_sst(root: Path, train=SST_TRAIN) -> None:
    (root / "sst").mkdir()
    for name, lines in (("train.txt", train), ("dev.txt", SST_TEST), ("test.txt", SST_TEST)):
        (root / "sst" / name).write_text("\n".join(lines) + "\n")


def test_sst5(tmp_path):
    make_sst(tmp_path)
    write_glove(tmp_path / "glove" / "glove.txt")
    examples = text.read_sst_file(tmp_path / "sst" / "train.txt")
    assert examples == [("The movie was great", 3), ("A bad ( / movie )", 0), ("Bad .", 1)]
    data = load("sst5", tmp_path, max_len=6)
    assert data.train_y.tolist() == [3, 0, 1] and data.test_y.tolist() == [4, 2]
    assert data.num_classes == 5 and data.class_names[0] == "very negative"
    assert data.train_x.shape == (3, 1, 6, DIM)
    assert decode(data) == ["the movie was great", "a bad ( movie )", "bad ."]


def test_sst_malformed_line(tmp_path):
    make_sst(tmp_path, [SST_TRAIN[0], "(7 (2 label) (2 out of range))", SST_TRAIN[2]])
    write_glove(tmp_path / "glove" / "glove.txt")
    with pytest.raises(UserError, match=r"train.txt, line 2"):
        load("sst5", tmp_path)


TREC_TRAIN = [
    "DESC:def What is a movie ?",
    "HUM:ind Who was great ?",
    "HUM:gr Who is the movie group \xe9 ?",
    "NUM:count What is 4 ?",
    "ABBR:exp What is ABC ?",
    "ENTY:other What was bad ?",
    "LOC:city What is the city ?",
]
TREC_TEST = ["HUM:ind Who is great ?", "NUM:count What ?"]


def make_trec(root: Path, train=TREC_TRAIN, test=TREC_TEST) -> None:
    (root / "trec").mkdir(parents=True, exist_ok=True)
    (root / "trec" / "train_5500.label").write_bytes(("\n".join(train) + "\n").encode("latin-1"))
    (root / "trec" / "TREC_10.label").write_bytes(("\n".join(test) + "\n").encode("latin-1"))


def test_trec6(tmp_path):
    make_trec(tmp_path)
    write_glove(tmp_path / "glove" / "glove.txt")
    data = load("trec6", tmp_path)
    assert data.class_names == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    assert data.train_y.tolist() == [1, 3, 3, 5, 0, 2, 4] and data.test_y.tolist() == [3, 5]
    assert data.train_x.shape == (7, 1, 400, DIM)
    assert "\xe9" in data.vocab
    assert decode(data, "test") == ["who is great ?", "what ?"]


def test_trec50(tmp_path):
    make_trec(tmp_path)
    write_glove(tmp_path / "glove" / "glove.txt")
    data = load("trec50", tmp_path, max_len=3, max_vocab=4)
    assert data.class_names == ("ABBR:exp", "DESC:def", "ENTY:other", "HUM:gr", "HUM:ind", "LOC:city", "NUM:count")
    assert data.train_y.tolist() == [1, 4, 3, 6, 0, 2, 5] and data.test_y.tolist() == [4, 6]
    assert data.vocab == (PAD, UNK, "?", "is") and data.train_x.shape == (7, 1, 3, DIM)
    make_trec(tmp_path, test=["LOC:other Where ?"])
    with pytest.raises(UserError, match=r"TREC_10.label: labels LOC:other are not among the classes"):
        load("trec50", tmp_path)


def test_trec_malformed_line(tmp_path):
    make_trec(tmp_path, train=[*TREC_TRAIN[:2], "no label on this line", *TREC_TRAIN[2:]])
    write_glove(tmp_path / "glove" / "glove.txt")
    with pytest.raises(UserError, match=r"train_5500.label, line 3: expected 'COARSE:fine"):
        load("trec6", tmp_path)


def test_missing_trec_and_glove(tmp_path):
    make_trec(tmp_path)
    with pytest.raises(UserError, match=r"glove.txt.*dataset.download: true"):
        load("trec6", tmp_path)
    (tmp_path / "trec" / "TREC_10.label").unlink()
    write_glove(tmp_path / "glove" / "glove.txt")
    with pytest.raises(UserError, match=r"TREC_10.label does not exist.*dataset.download: true"):
        load("trec6", tmp_path)


def test_glove_path_absolute_and_missing_words_random(tmp_path):
    make_trec(tmp_path)
    glove = write_glove(tmp_path / "elsewhere" / "vectors.txt.gz")
    data = load_dataset("trec6", root=tmp_path, glove=str(glove), embed_dim=DIM, missing="random", max_len=8)
    assert data.embeddings[data.vocab.index("city")].abs().sum() > 0  # not in GloVe: random
    assert not data.embeddings[0].any()


def test_options(tmp_path):
    with pytest.raises(UserError, match="dataset 'digits' takes only the options resize, channels, normalise; got: embed_dim"):
        load_dataset("digits", embed_dim=50)
    with pytest.raises(UserError, match="unknown option for dataset 'trec6' 'embed_dims'.*did you mean 'embed_dim'"):
        load_dataset("trec6", root=tmp_path, embed_dims=50)
    for bad in ({"max_len": 0}, {"max_vocab": 1}, {"missing": "gaussian"}):
        with pytest.raises(UserError, match=next(iter(bad))):
            load_dataset("trec6", root=tmp_path, **bad)


# --- downloads -------------------------------------------------------------------------------------




def pinned(path: Path) -> Remote:
    """A Remote for the local file ``path`` with its sha256 pinned."""
    return Remote((path.as_uri(),), "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())


def test_trec_and_glove_download(tmp_path, monkeypatch, file_urls):
    mirror = tmp_path / "mirror"
    make_trec(mirror)
    for name in text.TREC_FILES:
        monkeypatch.setitem(text.TREC_SOURCES, name, pinned(mirror / "trec" / name))
    with zipfile.ZipFile(mirror / "glove.6B.zip", "w") as archive:
        archive.writestr(f"glove.6B.{DIM}d.txt", glove_text())
    monkeypatch.setattr(text, "GLOVE_SOURCE", pinned(mirror / "glove.6B.zip"))
    root = tmp_path / "root"
    data = load_dataset("trec6", root=root, download=True, glove=f"glove/glove.6B.{DIM}d.txt", embed_dim=DIM)
    assert data.test_y.tolist() == [3, 5]
    assert sorted(p.name for p in (root / "glove").iterdir()) == [f"glove.6B.{DIM}d.txt", "glove.6B.zip"]
    assert load_dataset("trec6", root=root, download=True, embed_dim=DIM).vocab == data.vocab  # default: the zip


def test_unpinned_download_needs_opt_in(tmp_path, monkeypatch, file_urls):
    """train_5500.label has no pinned hash: it is downloaded only with DISTILL_UNVERIFIED_DOWNLOADS=1."""
    assert text.TREC_SOURCES["train_5500.label"].known_hash is None
    mirror = tmp_path / "mirror"
    make_trec(mirror)
    unpinned = Remote(((mirror / "trec" / "train_5500.label").as_uri(),), None)
    monkeypatch.setitem(text.TREC_SOURCES, "train_5500.label", unpinned)
    root = tmp_path / "root"
    write_glove(root / "glove" / "glove.txt")
    monkeypatch.delenv(UNVERIFIED_ENV, raising=False)
    with pytest.raises(UserError, match=rf"no checksum is pinned for .*train_5500.label.*{UNVERIFIED_ENV}=1"):
        load("trec6", root, download=True)
    assert not (root / "trec" / "train_5500.label").exists()
    monkeypatch.setenv(UNVERIFIED_ENV, "1")
    monkeypatch.setitem(text.TREC_SOURCES, "TREC_10.label", pinned(mirror / "trec" / "TREC_10.label"))
    assert load("trec6", root, download=True).test_y.tolist() == [3, 5]


@pytest.mark.parametrize("encrypted", [True, False])
def test_unreadable_zip_members_in_downloads(tmp_path, monkeypatch, file_urls, encrypted):
    glove = unreadable_zip(tmp_path / "glove.6B.zip", [f"glove.6B.{DIM}d.txt"], encrypted)
    monkeypatch.setattr(text, "GLOVE_SOURCE", pinned(glove))
    make_trec(tmp_path / "root")
    with pytest.raises(UserError, match=r"cannot read .*glove.6B.zip: .*(encrypted|compression method)"):
        load_dataset("trec6", root=tmp_path / "root", download=True, glove=f"glove/glove.6B.{DIM}d.txt", embed_dim=DIM)
    trees = unreadable_zip(tmp_path / "trees.zip", [f"trees/{name}" for name in text.SST_FILES], encrypted)
    monkeypatch.setattr(text, "SST_SOURCE", pinned(trees))
    with pytest.raises(UserError, match=r"cannot read .*trainDevTestTrees_PTB.zip: .*(encrypted|compression method)"):
        text.ensure_sst(tmp_path / "root", download=True)


def test_sst_download_extracts_trees(tmp_path, monkeypatch, file_urls):
    trees = tmp_path / "trees.zip"
    with zipfile.ZipFile(trees, "w") as zipped:
        for name, lines in (("train.txt", SST_TRAIN), ("dev.txt", SST_TEST), ("test.txt", SST_TEST)):
            zipped.writestr(f"trees/{name}", "\n".join(lines) + "\n")
    monkeypatch.setattr(text, "SST_SOURCE", pinned(trees))
    root = tmp_path / "root"
    write_glove(root / "glove" / "glove.txt")
    assert load("sst5", root, download=True, max_len=6).train_y.tolist() == [3, 0, 1]
    assert sorted(path.name for path in (root / "sst").iterdir()) == sorted(text.SST_FILES)


def test_corrupt_glove_member_leaves_no_file(tmp_path, monkeypatch, file_urls):
    archive = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(archive, "w") as zipped:  # stored, so a changed byte fails only the CRC check at the end
        zipped.writestr(f"glove.6B.{DIM}d.txt", glove_text())
    archive.write_bytes(archive.read_bytes().replace(b"movie", b"mouse", 1))
    monkeypatch.setattr(text, "GLOVE_SOURCE", pinned(archive))
    root = tmp_path / "root"
    make_trec(root)
    with pytest.raises(UserError, match="cannot read .*glove.6B.zip: Bad CRC-32"):
        load_dataset("trec6", root=root, download=True, glove=f"glove/glove.6B.{DIM}d.txt", embed_dim=DIM)
    assert sorted(path.name for path in (root / "glove").iterdir()) == ["glove.6B.zip"]


def test_imdb_download_verifies_its_hash(tmp_path, monkeypatch, file_urls):
    source = tmp_path / "source"
    make_imdb(source)
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "aclImdb", arcname="aclImdb")
    root = tmp_path / "root"
    write_glove(root / "glove" / "glove.txt")
    monkeypatch.setattr(text, "IMDB_SOURCE", Remote((archive.as_uri(),), "md5:" + "0" * 32))
    with pytest.raises(UserError, match="could not download aclImdb_v1.tar.gz .*MD5 hash .*does not match"):
        load("imdb", root, download=True)
    assert sorted(path.name for path in root.iterdir()) == ["glove"]
    monkeypatch.setattr(text, "IMDB_SOURCE", pinned(archive))
    assert load("imdb", root, download=True).train_y.tolist() == [0, 0, 1]
