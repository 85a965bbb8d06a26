import matplotlib.image
import torch

from distill.viz import caption, save_grid, save_words, to_displayable


def test_to_displayable_undoes_normalisation():
    pixels = torch.rand(2, 3, 4, 4)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    x = (pixels - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(to_displayable(x, mean, std), pixels.movedim(1, -1), atol=1e-6)


def test_grid_for_one_and_three_channels(tmp_path):
    for channels in (1, 3):
        path = tmp_path / f"grid{channels}.png"
        save_grid(path, torch.randn(3, 4, channels, 8, 8), torch.arange(12).view(3, 4) % 10,
                  torch.rand(6), (0.5,) * channels, (0.25,) * channels, [str(c) for c in range(10)])
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 100 and image.shape[1] > 100


def test_soft_label_caption_shows_the_top_three_classes():
    assert caption(torch.tensor(3), list("abcd")) == "d"
    assert caption(torch.tensor([0.1, 2.34, -0.33, 0.5]), list("abcd")) == "b: 2.34\nd: 0.50\na: 0.10"


def test_words_decode_each_synthetic_sentence_to_its_nearest_words(tmp_path):
    vocab = ("<pad>", "<unk>", "good", "bad", "movie")
    embeddings = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [-1.0, 0.1], [0.0, 1.0]])
    sentence = torch.tensor([[0.9, 0.1], [0.1, 2.0], [0.0, 0.0]])  # good movie <pad>
    x = torch.stack([sentence, -sentence]).view(2, 1, 1, 3, 2)
    save_words(tmp_path / "words.txt", x, torch.tensor([[0], [1]]), torch.tensor([0.5, 0.25]), embeddings, vocab, ["neg", "pos"])
    text = (tmp_path / "words.txt").read_text().splitlines()
    assert text == ["## step 0 (η = 0.5)", "[neg] good movie", "", "## step 1 (η = 0.25)", "[pos] bad bad"]
