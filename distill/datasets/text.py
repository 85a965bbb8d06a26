"""Text datasets embedded with GloVe and held as one-channel "images" (Sucholutsky & Schonlau, TDD).

A sentence is tokenised (:func:`tokenize`, torchtext's ``basic_english``), its tokens are
looked up in a vocabulary built from the training split (:func:`build_vocab`), padded with
``<pad>`` or truncated to ``max_len`` (:func:`encode`) and replaced by their GloVe vectors
(:func:`read_glove`) once, as preprocessing. A dataset becomes float32
``[N, 1, max_len, embed_dim]``, which the rest of the library treats like grey images
(memory: N x max_len x embed_dim x 4 bytes, e.g. 2 GB per IMDB split at 400 x 50).
:func:`nearest_words` turns (synthetic) embedded sentences back into words.

Files live under ``root``:

    imdb      <root>/aclImdb/{train,test}/{neg,pos}/*.txt     labels neg = 0, pos = 1
    sst5      <root>/sst/{train,test}.txt                     PTB trees, the root's label 0..4
    trec6     <root>/trec/{train_5500,TREC_10}.label          the coarse label (6 classes)
    trec50    <root>/trec/{train_5500,TREC_10}.label          the full ``COARSE:fine`` label
    GloVe     <root>/glove/glove.6B.zip by default            or any ``.txt``, ``.txt.gz``, ``.zip``

SST's ``dev.txt`` is not used: the datasets have a train and a test split.

Downloads go through :func:`distill.datasets.download.fetch`, verified against pinned hashes:
the IMDB archive's published md5 and the sha256 of ``TREC_10.label``. No hash is pinned yet
for ``train_5500.label``, the SST trees archive or ``glove.6B.zip`` (no exact copy of them has
been hashed), so those are downloaded only when ``DISTILL_UNVERIFIED_DOWNLOADS=1`` is set; their
contents are still parsed strictly when read.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from itertools import chain, repeat
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from distill.datasets.download import Remote, extract_tar, fetch
from distill.datasets.images import corrupt_error, missing_error
from distill.errors import UserError, unknown

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
MISSING_STD = 0.1
FLOAT32_MAX = float(np.finfo(np.float32).max)
# What reading a member of a (corrupt, encrypted or exotically compressed) zip archive raises.
ZIP_ERRORS = (
    OSError,
    EOFError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    UnicodeDecodeError,
    zipfile.BadZipFile,
    zlib.error,
)

Example = tuple[str, int]

log = logging.getLogger(__name__)


# --- tokenizer --------------------------------------------------------------------------------

# torchtext's basic_english: these regex substitutions, in this order, after lower-casing and
# before splitting on whitespace. All but the last are literal, so str.replace does them
# (same result, faster); the last, r"\s+" -> " ", is implied by str.split().
BASIC_ENGLISH = (
    ("'", " '  "),
    ('"', ""),
    (".", " . "),
    ("<br />", " "),
    (",", " , "),
    ("(", " ( "),
    (")", " ) "),
    ("!", " ! "),
    ("?", " ? "),
    (";", " "),
    (":", " "),
)


def tokenize(line: str) -> list[str]:
    """Split ``line`` into tokens exactly as torchtext's ``get_tokenizer("basic_english")`` does.

    >>> tokenize("Don't panic!<br />It's (only) a test.")
    ['don', "'", 't', 'panic', '!', 'it', "'", 's', '(', 'only', ')', 'a', 'test', '.']
    """
    line = line.lower()
    for pattern, replacement in BASIC_ENGLISH:
        line = line.replace(pattern, replacement)
    return line.split()


# --- vocabulary and encoding ------------------------------------------------------------------


def build_vocab(sentences: Iterable[Sequence[str]], max_vocab: int | None = None, min_freq: int = 1) -> tuple[str, ...]:
    """The vocabulary of tokenised ``sentences``: ``<pad>``, ``<unk>``, then words by falling frequency.

    Words seen fewer than ``min_freq`` times are left out; ties are broken alphabetically.
    ``max_vocab`` caps the total size, the two special tokens included (as torchtext's
    ``max_tokens``), so the embedding matrix has at most ``max_vocab`` rows.
    """
    if max_vocab is not None and max_vocab < 2:
        raise UserError(f"max_vocab must be at least 2 (<pad> and <unk>), got {max_vocab}")
    counts = Counter(chain.from_iterable(sentences))
    for special in (PAD, UNK):
        counts.pop(special, None)
    words = sorted((word for word, count in counts.items() if count >= min_freq), key=lambda w: (-counts[w], w))
    if max_vocab is not None:
        words = words[: max_vocab - 2]
    return (PAD, UNK, *words)


def encode(sentences: Sequence[Sequence[str]], vocab: Sequence[str], max_len: int) -> np.ndarray:
    """int64 [N, max_len] token ids: each sentence truncated to its first ``max_len`` tokens, padded with 0.

    Words not in ``vocab`` become ``<unk>`` (1). The lookups run inside ``map`` (C), the
    padding is one masked numpy assignment.
    """
    index = {word: i for i, word in enumerate(vocab)}
    lengths = np.fromiter((min(len(s), max_len) for s in sentences), np.int64, count=len(sentences))
    tokens = chain.from_iterable(s[:max_len] for s in sentences)
    flat = np.fromiter(map(index.get, tokens, repeat(UNK_ID)), np.int64, count=int(lengths.sum()))
    ids = np.zeros((len(sentences), max_len), np.int64)
    ids[np.arange(max_len) < lengths[:, None]] = flat
    return ids


def embed(ids: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """float32 [N, 1, L, D]: the rows of ``embeddings`` [V, D] that ``ids`` [N, L] pick, as one-channel images."""
    return np.take(embeddings, ids, axis=0)[:, None]


# --- GloVe --------------------------------------------------------------------------------------


def read_glove(
    path: Path,
    vocab: Sequence[str],
    embed_dim: int,
    member: str | None = None,
    missing: str = "zero",
    seed: int = 0,
) -> np.ndarray:
    """float32 [len(vocab), embed_dim]: row i is the GloVe vector of ``vocab[i]``.

    ``path`` is GloVe's text format (one word and ``embed_dim`` space-separated numbers per
    line) as ``.txt``, ``.txt.gz`` or a ``.zip`` whose ``member`` is read (by default the
    one whose name ends in ``.<embed_dim>d.txt``, or its only ``.txt``). Only the vocabulary's
    words are parsed, and their numbers must be finite; every line's field count is checked.
    ``<pad>`` is the zero vector; words not in the file are zero (``missing="zero"``) or
    drawn from N(0, 0.1²) with ``seed`` (``missing="random"``). A file with no vectors, or
    with none for the vocabulary's words, is a UserError.
    """
    if missing not in ("zero", "random"):
        raise UserError(f"missing must be 'zero' or 'random', got {missing!r}")
    if not path.is_file():
        raise UserError(f"GloVe file not found: {path}; set the `glove` option to its path (relative to the root)")
    wanted = {word.encode(): i for i, word in enumerate(vocab) if word != PAD}
    vectors = np.zeros((len(vocab), embed_dim), np.float32)
    found = np.zeros(len(vocab), bool)
    with glove_lines(path, member, embed_dim) as lines:
        for number, word, numbers in glove_records(lines, path, embed_dim):
            i = wanted.get(word)
            if i is not None and not found[i]:
                vectors[i] = parse_vector(numbers, path, number)
                found[i] = True
    check_found(found, vocab, path)
    absent = ~found & np.array([word != PAD for word in vocab], bool)
    if missing == "random":
        vectors[absent] = np.random.default_rng(seed).normal(0, MISSING_STD, vectors.shape).astype(np.float32)[absent]
    log.info("GloVe %s: %d of %d vocabulary words found", path.name, int(found.sum()), len(vocab) - 1)
    return vectors


def check_found(found: np.ndarray, vocab: Sequence[str], path: Path) -> None:
    """A UserError unless ``path`` had a vector for some word of ``vocab`` (``<pad>`` and ``<unk>`` aside)."""
    words = [i for i, word in enumerate(vocab) if word not in (PAD, UNK)]
    if words and not found[words].any():
        raise UserError(
            f"GloVe file {path} has a vector for none of the {len(words)} vocabulary words "
            f"(e.g. '{vocab[words[0]]}'); is it a GloVe file, and for this language?"
        )


@contextmanager
def glove_lines(path: Path, member: str | None, embed_dim: int) -> Iterator[BinaryIO]:
    """The binary lines of a GloVe ``.txt``, ``.gz`` or ``.zip`` file; read errors become UserErrors."""
    try:
        if path.suffix == ".zip":
            with zip_text(path, member, embed_dim) as file:
                yield file
        elif path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                yield file
        else:
            with path.open("rb") as file:
                yield file
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise corrupt_error(path, err) from err


@contextmanager
def zip_text(path: Path, member: str | None, embed_dim: int) -> Iterator[BinaryIO]:
    """The GloVe member of the zip archive ``path``, open; an unsupported or encrypted archive is a UserError."""
    with ExitStack() as stack:
        try:
            archive = stack.enter_context(zipfile.ZipFile(path))
            file = stack.enter_context(archive.open(zip_member(archive, path, member, embed_dim)))
        except (RuntimeError, NotImplementedError, UnicodeDecodeError) as err:
            raise corrupt_error(path, f"unsupported or encrypted zip archive ({err})") from err
        yield file


def zip_member(archive: zipfile.ZipFile, path: Path, member: str | None, embed_dim: int) -> str:
    """The name of the GloVe text file to read inside ``archive``."""
    names = archive.namelist()
    listing = ", ".join(map(repr, names))  # repr: a name in the archive may hold a newline
    if member is not None:
        if member not in names:
            raise UserError(f"{path} has no member '{member}'; it holds: {listing}")
        return member
    candidates = [n for n in names if n.endswith(f".{embed_dim}d.txt")] or [n for n in names if n.endswith(".txt")]
    if len(candidates) != 1:
        raise UserError(
            f"cannot tell which member of {path} holds the {embed_dim}-dimensional vectors "
            f"(it holds: {listing}); set the `glove_member` option"
        )
    return candidates[0]


def glove_records(lines: Iterable[bytes], path: Path, embed_dim: int) -> Iterator[tuple[int, bytes, bytes]]:
    """``(line number, word, numbers)`` for each line, after checking it has ``embed_dim`` numbers.

    The first line fixes the file's dimension: a different ``embed_dim`` is a mismatch.
    A word may contain spaces (a few in the 840B file) if the field after its first space
    is not a number. A file whose lines are all blank is a UserError.
    """
    records = 0
    for number, line in enumerate(lines, 1):
        line = line.rstrip()
        if not line:
            continue
        spaces = line.count(b" ")
        if number == 1 and spaces != embed_dim:
            raise UserError(
                f"GloVe file {path} has {spaces}-dimensional vectors (line 1 has {spaces} numbers), "
                f"but embed_dim is {embed_dim}; set embed_dim to {spaces} or choose a {embed_dim}-d file"
            )
        if spaces == embed_dim:
            word, numbers = line.split(b" ", 1)
        elif spaces > embed_dim and not is_number(line.split(b" ", 2)[1]):
            word = line.rsplit(b" ", embed_dim)[0]
            numbers = line[len(word) + 1 :]
        else:
            raise malformed(path, number, f"expected a word and {embed_dim} numbers, found {spaces} numbers")
        records += 1
        yield number, word, numbers
    if not records:
        raise UserError(f"GloVe file {path} holds no vectors (every line is blank); download it again or choose another")


def is_number(field: bytes) -> bool:
    """Whether ``field`` parses as a float."""
    try:
        float(field)
    except ValueError:
        return False
    return True


def parse_vector(numbers: bytes, path: Path, number: int) -> np.ndarray:
    """The space-separated floats of line ``number``, as float32; nan, inf or overflow is a UserError."""
    try:
        vector = np.array(numbers.split(b" "), dtype=np.float64)
    except ValueError as err:
        raise malformed(path, number, err) from err
    if not np.all(np.abs(vector) <= FLOAT32_MAX):
        raise malformed(path, number, "a value is nan, infinite or too large for float32")
    return vector.astype(np.float32)


def malformed(path: Path, number: int, reason: object) -> UserError:
    """The error for line ``number`` of ``path`` that cannot be parsed."""
    return UserError(f"{path}, line {number}: {reason}; the file is corrupt or not in the expected format")


# --- nearest words ---------------------------------------------------------------------------------

NEAREST_CHUNK = 4096


def nearest_words(x: torch.Tensor, embeddings: torch.Tensor, vocab: Sequence[str], pad_norm: float = 1e-6) -> list:
    """The vocabulary word whose embedding is closest in cosine similarity to each row of ``x``.

    ``x`` is [L, D] (one sentence: a list of L words) or [..., L, D] (nested lists of
    sentences following the leading dimensions, e.g. [n, 1, L, D] -> n lists of one sentence).
    Rows with norm below ``pad_norm`` decode to ``<pad>``; words whose embedding is zero
    (``<pad>``, words GloVe lacks) are never chosen for the other rows.
    """
    if x.ndim < 2 or x.shape[-1] != embeddings.shape[1]:
        raise UserError(f"expected x [..., L, {embeddings.shape[1]}] to decode, got shape {tuple(x.shape)}")
    rows = x.detach().reshape(-1, x.shape[-1]).to(embeddings.device, torch.float32)
    table = embeddings.detach().float()
    norms = table.norm(dim=1)
    unit = table / norms.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(1)
    unusable = norms <= 0
    ids = torch.cat([best_match(chunk, unit, unusable) for chunk in rows.split(NEAREST_CHUNK)])
    words = np.asarray(vocab, dtype=object)[ids.cpu().numpy()]
    words[(rows.norm(dim=1) < pad_norm).cpu().numpy()] = PAD
    return words.reshape(x.shape[:-1]).tolist()


def best_match(rows: torch.Tensor, unit: torch.Tensor, unusable: torch.Tensor) -> torch.Tensor:
    """Index of the row of ``unit`` (unit-norm embeddings) with the highest cosine to each of ``rows``."""
    scores = rows @ unit.T
    scores[:, unusable] = -torch.inf
    return scores.argmax(dim=1)


# --- corpora -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """The raw text of a dataset: (text, label) pairs per split and the class names."""

    train: list[Example]
    test: list[Example]
    class_names: tuple[str, ...]


IMDB_FOLDER = "aclImdb"
IMDB_SOURCE = Remote(
    ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",), "md5:7c2ac02c03563afcf9b574c7e56c153a"
)
IMDB_CLASSES = ("negative", "positive")

SST_FOLDER = "sst"
SST_SOURCE = Remote(("https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip",), None)
SST_FILES = ("train.txt", "dev.txt", "test.txt")
SST_CLASSES = ("very negative", "negative", "neutral", "positive", "very positive")
SST_LEAF = re.compile(r"\((\d+) ([^()\s]+)\)")
SST_ROOT = re.compile(r"\((\d+) ")
PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}

TREC_FOLDER = "trec"
TREC_FILES = ("train_5500.label", "TREC_10.label")
TREC_URL = "https://cogcomp.seas.upenn.edu/Data/QA/QC/"
# TREC_10.label's sha256 was computed from a copy whose md5 and sha256 equal the published ones
# (torchtext's md5, Hugging Face datasets' sha256); no exact copy of train_5500.label was at hand.
TREC_SOURCES = {
    "train_5500.label": Remote((f"{TREC_URL}train_5500.label",), None),
    "TREC_10.label": Remote(
        (f"{TREC_URL}TREC_10.label",), "sha256:033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e"
    ),
}
TREC6_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")

GLOVE_ZIP = "glove.6B.zip"
GLOVE_SOURCE = Remote(("https://nlp.stanford.edu/data/glove.6B.zip",), None)
GLOVE_6B_MEMBER = re.compile(r"glove\.6B\.\d+d\.txt")


def require(dataset: str, path: Path, source: Remote, download: bool) -> Path:
    """``path`` if it exists; else downloaded from ``source`` when allowed, else a UserError naming it."""
    if not path.is_file():
        if not download:
            raise missing_error(dataset, path)
        fetch(source, path)
    return path


def nonempty(examples: list[Example], where: Path) -> list[Example]:
    """``examples``, or a UserError naming ``where`` if there are none."""
    if not examples:
        raise UserError(f"no examples found in {where}; is it the right folder and are the files complete?")
    return examples


def read_imdb_split(folder: Path) -> list[Example]:
    """``<folder>/{neg,pos}/*.txt`` (e.g. ``aclImdb/train``) as (review, 0 or 1) pairs, in file-name order."""
    examples = []
    for label, name in enumerate(("neg", "pos")):
        for path in sorted((folder / name).glob("*.txt")):
            try:
                examples.append((path.read_text(encoding="utf-8"), label))
            except (OSError, UnicodeDecodeError) as err:
                raise corrupt_error(path, err) from err
    return nonempty(examples, folder)


def read_imdb(root: Path, download: bool) -> Corpus:
    """IMDB movie reviews: 25,000 / 25,000, positive or negative (``train/unsup`` is not used)."""
    folder = root / IMDB_FOLDER
    if not all((folder / split / label).is_dir() for split in ("train", "test") for label in ("neg", "pos")):
        if not download:
            raise missing_error("imdb", folder)
        extract_tar(require("imdb", root / "aclImdb_v1.tar.gz", IMDB_SOURCE, True), root)
    return Corpus(read_imdb_split(folder / "train"), read_imdb_split(folder / "test"), IMDB_CLASSES)


def read_sst_file(path: Path) -> list[Example]:
    """PTB trees, one per line, as (sentence, root label) pairs; the sentence is the tree's leaves.

    PTB escapes in the leaves (``-LRB-``, ``\\/``, ...) are undone.
    """
    examples = []
    with open_text(path, "utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            root = SST_ROOT.match(line)
            leaves = [PTB_ESCAPES.get(word, word) for _, word in SST_LEAF.findall(line)]
            if root is None or not leaves or line.count("(") != line.count(")") or not 0 <= int(root[1]) <= 4:
                raise malformed(path, number, "expected a PTB tree '(label ...)' with labels 0..4")
            text = " ".join(leaves).replace("\\/", "/").replace("\\*", "*")
            examples.append((text, int(root[1])))
    return nonempty(examples, path)


def ensure_sst(root: Path, download: bool) -> Path:
    """``<root>/sst`` with the tree files, extracted from the downloaded archive when allowed."""
    folder = root / SST_FOLDER
    if not all((folder / name).is_file() for name in SST_FILES):
        if not download:
            raise missing_error("sst5", folder if not folder.is_dir() else folder / "train.txt")
        archive = require("sst5", root / "trainDevTestTrees_PTB.zip", SST_SOURCE, True)
        try:
            with zipfile.ZipFile(archive) as zipped:
                folder.mkdir(parents=True, exist_ok=True)
                for name in SST_FILES:
                    (folder / name).write_bytes(zipped.read(f"trees/{name}"))
        except ZIP_ERRORS as err:
            raise corrupt_error(archive, err) from err
    return folder


def read_sst5(root: Path, download: bool) -> Corpus:
    """SST-5: 8,544 / 2,210 movie-review sentences, five sentiment classes (dev.txt unused)."""
    folder = ensure_sst(root, download)
    return Corpus(read_sst_file(folder / "train.txt"), read_sst_file(folder / "test.txt"), SST_CLASSES)


def read_trec_file(path: Path) -> list[tuple[str, str]]:
    """``COARSE:fine question ...`` lines (latin-1) as (question, ``COARSE:fine``) pairs."""
    examples = []
    with open_text(path, "latin-1") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            label, _, question = line.strip().partition(" ")
            coarse, colon, fine = label.partition(":")
            if not (coarse.isupper() and colon and fine and question.strip()):
                raise malformed(path, number, "expected 'COARSE:fine question words ...'")
            examples.append((question, label))
    return examples


def read_trec(root: Path, download: bool, fine: bool) -> Corpus:
    """TREC question classification, 5,452 / 500: the full label (``fine``) or its coarse part."""
    folder = root / TREC_FOLDER
    paths = [require("trec50" if fine else "trec6", folder / n, TREC_SOURCES[n], download) for n in TREC_FILES]
    train, test = (read_trec_file(path) for path in paths)
    if fine:
        class_names = tuple(sorted({label for _, label in train}))
    else:
        class_names = TREC6_CLASSES
        train, test = ([(q, label.partition(":")[0]) for q, label in split] for split in (train, test))
    index = {name: i for i, name in enumerate(class_names)}
    splits = []
    for path, split in zip(paths, (train, test)):
        unseen = sorted({label for _, label in split} - index.keys())
        if unseen:
            raise UserError(f"{path}: labels {', '.join(unseen)} are not among the classes {', '.join(class_names)}")
        splits.append(nonempty([(question, index[label]) for question, label in split], path))
    return Corpus(*splits, class_names)


def read_trec6(root: Path, download: bool) -> Corpus:
    """TREC-6: questions in 6 coarse classes."""
    return read_trec(root, download, fine=False)


def read_trec50(root: Path, download: bool) -> Corpus:
    """TREC-50: questions in the fine classes of the training file (50)."""
    return read_trec(root, download, fine=True)


@contextmanager
def open_text(path: Path, encoding: str) -> Iterator[Iterator[str]]:
    """The lines of a text file; a missing or undecodable file is a UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        with path.open(encoding=encoding) as file:
            yield file
    except (OSError, UnicodeDecodeError) as err:
        raise corrupt_error(path, err) from err


READERS: dict[str, Callable[[Path, bool], Corpus]] = {
    "imdb": read_imdb,
    "sst5": read_sst5,
    "trec6": read_trec6,
    "trec50": read_trec50,
}


# --- the whole pipeline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextOptions:
    """The options of a text dataset (``load_dataset(name, **options)``).

    ``glove`` is relative to the root unless absolute; ``glove_member`` picks the file in a
    ``.zip``; ``missing`` is ``"zero"`` or ``"random"`` (N(0, 0.1²) with ``seed``) for
    vocabulary words GloVe lacks.
    """

    glove: str = f"glove/{GLOVE_ZIP}"
    glove_member: str | None = None
    embed_dim: int = 50
    max_len: int = 400
    max_vocab: int | None = None
    min_freq: int = 1
    missing: str = "zero"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("embed_dim", "max_len", "min_freq"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"text dataset option {name} must be a positive integer, got {value!r}")
        if self.max_vocab is not None and (not isinstance(self.max_vocab, int) or self.max_vocab < 2):
            raise UserError(
                f"text dataset option max_vocab must be at least 2 (<pad> and <unk>), got {self.max_vocab!r}"
            )
        if self.missing not in ("zero", "random"):
            raise UserError(f"text dataset option missing must be 'zero' or 'random', got {self.missing!r}")


def text_options(dataset: str, options: dict[str, object]) -> TextOptions:
    """``options`` as TextOptions; an unknown key is a UserError naming the closest valid one."""
    valid = [field.name for field in fields(TextOptions)]
    for key in options:
        if key not in valid:
            raise unknown(f"option for dataset '{dataset}'", key, valid)
    return TextOptions(**options)  # type: ignore[arg-type]


def ensure_glove(root: Path, options: TextOptions, download: bool) -> Path:
    """The GloVe file the options name; ``glove.6B.zip`` (or a member of it) is downloaded when allowed."""
    path = Path(options.glove).expanduser()
    path = path if path.is_absolute() else root / path
    if path.is_file():
        return path
    if not download:
        raise UserError(
            f"GloVe file not found: {path} (looked in {path.parent}). Set `dataset.download: true` in the "
            f"config (download=True in Python) to fetch {GLOVE_ZIP}, or set the `glove` option to your file"
        )
    if path.name != GLOVE_ZIP and not GLOVE_6B_MEMBER.fullmatch(path.name):
        raise UserError(
            f"GloVe file not found: {path}, and only {GLOVE_ZIP} or its glove.6B.<dim>d.txt can be downloaded"
        )
    archive = require("glove", path.parent / GLOVE_ZIP, GLOVE_SOURCE, True)
    if path.name != GLOVE_ZIP:
        extract_member(archive, path.name, path)
    return path


def extract_member(archive: Path, name: str, dest: Path) -> None:
    """Write member ``name`` of the zip ``archive`` to ``dest``, atomically: a corrupt member leaves no file."""
    handle, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, zipfile.ZipFile(archive) as zipped, zipped.open(name) as member:
            shutil.copyfileobj(member, out)
        os.replace(temp_name, dest)
    except ZIP_ERRORS as err:
        raise corrupt_error(archive, err) from err
    finally:
        Path(temp_name).unlink(missing_ok=True)


@dataclass(frozen=True)
class TextArrays:
    """A text dataset embedded: x float32 [N, 1, max_len, embed_dim], y int64 [N], and the vocabulary."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...]
    vocab: tuple[str, ...]
    embeddings: np.ndarray


def read_text_dataset(name: str, root: Path, download: bool, **options: object) -> TextArrays:
    """Read text dataset ``name``, build the vocabulary on its training split and embed both splits."""
    opts = text_options(name, options)
    glove = ensure_glove(root, opts, download)
    corpus = READERS[name](root, download)
    train = [tokenize(text) for text, _ in corpus.train]
    test = [tokenize(text) for text, _ in corpus.test]
    vocab = build_vocab(train, opts.max_vocab, opts.min_freq)
    embeddings = read_glove(glove, vocab, opts.embed_dim, opts.glove_member, opts.missing, opts.seed)
    return TextArrays(
        train_x=embed(encode(train, vocab, opts.max_len), embeddings),
        train_y=np.array([label for _, label in corpus.train], np.int64),
        test_x=embed(encode(test, vocab, opts.max_len), embeddings),
        test_y=np.array([label for _, label in corpus.test], np.int64),
        class_names=corpus.class_names,
        vocab=vocab,
        embeddings=embeddings,
    )
