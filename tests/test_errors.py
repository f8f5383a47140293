"""One sentence for weights that are not on this machine, with the one download command, from every loader."""

from __future__ import annotations

import pytest

from showme_i2g.errors import WeightsNotFoundError, describe_source, missing_weights


def test_missing_weights_names_what_and_how_to_get_it() -> None:
    error = missing_weights("The I3D network", "org/i3d", "i3d.pt", instead="set SHOWME_I3D")
    assert isinstance(error, WeightsNotFoundError)
    assert str(error) == ("The I3D network is not on this machine; download it with `hf download org/i3d i3d.pt` "
                          "or set SHOWME_I3D.")


def _clip():
    from showme_i2g.metrics.encoders import CLIPEncoder

    return CLIPEncoder.from_pretrained


def _dino():
    from showme_i2g.metrics.encoders import DINOEncoder

    return DINOEncoder.from_pretrained


def _captioner():
    from showme_i2g.i2g.captioning import VLMCaptioner

    return VLMCaptioner.from_pretrained


def _vqa():
    from showme_i2g.metrics.video import TransformersVQA

    return TransformersVQA.from_pretrained


def _depth():
    from showme_i2g.showme.rewards.depth import DepthEstimator

    return DepthEstimator.from_pretrained


def _alignment_reward():
    from showme_i2g.i2g.reward import CLIPAlignmentReward

    return CLIPAlignmentReward.from_pretrained


def _sentence_embedder():
    from showme_i2g.metrics.text import SentenceEmbedder

    return SentenceEmbedder


@pytest.mark.parametrize("loader", [_clip, _dino, _captioner, _vqa, _depth, _alignment_reward, _sentence_embedder])
def test_every_hub_loader_says_the_same_sentence_offline(loader) -> None:
    with pytest.raises(WeightsNotFoundError) as caught:
        loader()("no-such-org/no-such-model")
    message = str(caught.value)
    assert "no-such-org/no-such-model" in message and "is not on this machine" in message
    assert "`hf download no-such-org/no-such-model`" in message and "huggingface-cli" not in message
    assert message.count(".") <= 2 and "\n" not in message  # one sentence (the repo id holds no dot)


@pytest.mark.parametrize("source, said", [
    ("/srv/uploads/secret/photo.jpg", "'photo.jpg'"),
    ("bad\x07name.png", "'bad?name.png'"),
    (b"\x89PNG", "the uploaded photo"),
    (object(), "the photo"),
])
def test_messages_name_a_file_without_its_folders(source, said) -> None:
    assert describe_source(source) == said


def test_a_local_folder_that_is_no_model_is_not_told_to_download(tmp_path) -> None:
    from showme_i2g.metrics.text import SentenceEmbedder

    folder = tmp_path / "server" / "not-a-model"
    folder.mkdir(parents=True)
    with pytest.raises(WeightsNotFoundError) as caught:
        SentenceEmbedder(folder)
    message = str(caught.value)
    assert message == "The folder 'not-a-model' holds no sentence-embedding model we can load."
    assert str(tmp_path) not in message and "hf download" not in message


@pytest.mark.parametrize("mode", ["image", "video"])
def test_showme_evaluation_offline_names_the_missing_weights(mode) -> None:
    from showme_i2g.showme.evaluation import _real_suite

    with pytest.raises(WeightsNotFoundError, match="`hf download openai/clip-vit-large-patch14`"):
        _real_suite(mode, "cpu", "alex", None)
