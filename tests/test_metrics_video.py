"""Video metrics: FVD on a tiny I3D, FID over frames, VQAScore's question/P(yes)/averaging, video-text cosine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from showme_i2g.errors import InvalidInputError, WeightsNotFoundError
from showme_i2g.metrics.fid import frechet_distance
from showme_i2g.metrics.i3d import I3DFeatures, InceptionI3d, preprocess_fvd
from showme_i2g.metrics.video import (
    FVD,
    FrameAverageCLIP,
    FrameFID,
    TransformersVQA,
    VQAScore,
    sample_frame_indices,
    video_text_similarity,
    yes_probability,
)


def _videos(seed: int, n: int = 6, frames: int = 8, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_i3d() -> I3DFeatures:
    torch.manual_seed(0)
    return I3DFeatures(InceptionI3d(num_classes=16, width=1 / 16), device="cpu", resolution=32)


def test_real_i3d_layout_matches_the_pytorch_i3d_checkpoints() -> None:
    with torch.device("meta"):
        state = InceptionI3d().state_dict()
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert state["Mixed_5c.b3b.conv3d.weight"].shape == (128, 832, 1, 1, 1)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert "logits.conv3d.bias" in state and "Mixed_4f.b0.bn.running_var" in state
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == 12_697_264


def test_fvd_preprocessing_resizes_the_short_side_crops_and_scales() -> None:
    videos = torch.zeros(1, 2, 3, 40, 80)
    videos[..., :, 20:60] = 1.0  # a white centre band as wide as the crop
    out = preprocess_fvd(videos, resolution=20)
    assert out.shape == (1, 3, 2, 20, 20)  # (B, C, T, H, W)
    assert out.min() >= -1 and out.max() <= 1
    torch.testing.assert_close(out, torch.ones_like(out))  # the centre crop is all white -> +1


def test_fvd_is_zero_for_a_set_with_itself_and_grows_with_perturbation(tiny_i3d: I3DFeatures) -> None:
    real = _videos(0)
    fvd = FVD(tiny_i3d, num_frames=8)
    fvd.update(real, real=True)
    fvd.update(real, real=False)
    assert fvd.compute() == pytest.approx(0.0, abs=1e-6)
    distances = []
    for strength in (20, 80):
        noisy = [np.clip(v.astype(int) + strength, 0, 255).astype(np.uint8) for v in real]
        fvd.fake.__init__()
        fvd.update(noisy, real=False)
        distances.append(fvd.compute())
    assert 0 < distances[0] < distances[1]


def test_fvd_matches_the_closed_form_on_its_features(tiny_i3d: I3DFeatures) -> None:
    real, fake = _videos(1), _videos(2)
    fvd = FVD(tiny_i3d, num_frames=8)
    fvd.update(real, real=True)
    fvd.update(fake, real=False)
    feats_r = tiny_i3d(fvd.clip_batch(real)).double().numpy()
    feats_f = tiny_i3d(fvd.clip_batch(fake)).double().numpy()
    expected = frechet_distance(
        feats_r.mean(0), np.cov(feats_r, rowvar=False), feats_f.mean(0), np.cov(feats_f, rowvar=False)
    )
    assert fvd.compute() == pytest.approx(expected, rel=1e-6)


def test_fvd_needs_long_enough_clips(tiny_i3d: I3DFeatures) -> None:
    with pytest.raises(InvalidInputError, match="at least 16 frames"):
        FVD(tiny_i3d).update(_videos(0, frames=8), real=True)


def test_i3d_files_load_as_state_dict_or_torchscript(tmp_path, tiny_i3d: I3DFeatures) -> None:
    torch.manual_seed(1)
    model = InceptionI3d(num_classes=400, width=1 / 16).eval()
    # The real network's layout is fixed at width 1; a state dict for the port round-trips through load().
    full = InceptionI3d().eval()
    torch.save({f"module.{k}": v for k, v in full.state_dict().items()}, tmp_path / "i3d_pretrained_400.pt")
    loaded = I3DFeatures.load(tmp_path / "i3d_pretrained_400.pt")
    assert isinstance(loaded, InceptionI3d)
    key = "Mixed_5c.b0.conv3d.weight"
    torch.testing.assert_close(loaded.state_dict()[key], full.state_dict()[key])

    class Exported(torch.nn.Module):  # the StyleGAN-V export's call signature
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.jit.trace(model, torch.rand(1, 3, 8, 32, 32), check_trace=False)

        def forward(self, x: torch.Tensor, rescale: bool, resize: bool, return_features: bool) -> torch.Tensor:
            assert not rescale and not resize and return_features
            return self.net(x)

    torch.jit.script(Exported()).save(str(tmp_path / "i3d_torchscript.pt"))
    scripted = I3DFeatures.from_file(tmp_path / "i3d_torchscript.pt", device="cpu", resolution=32)
    assert scripted.torchscript
    clips = torch.rand(2, 8, 3, 24, 24)
    torch.testing.assert_close(scripted(clips), I3DFeatures(model, device="cpu", resolution=32)(clips))
    with pytest.raises(WeightsNotFoundError, match="no I3D file"):
        I3DFeatures.load(tmp_path / "missing.pt")


def test_default_i3d_offline_is_one_clear_sentence() -> None:
    with pytest.raises(WeightsNotFoundError, match="hf download"):
        I3DFeatures.load(None)


def _colour_features(images: list[Image.Image]) -> np.ndarray:
    """Mean and spread of each channel: a deterministic 6-d image feature."""
    arrays = np.stack([np.asarray(im, dtype=np.float64) for im in images])
    return np.concatenate([arrays.mean(axis=(1, 2)), arrays.std(axis=(1, 2))], axis=1)


def test_frame_fid_uses_every_frame() -> None:
    videos = _videos(3, n=3, frames=5)
    fid = FrameFID(_colour_features, batch_size=4)
    fid.update(videos, real=True)
    fid.update(videos, real=False)
    assert fid.real.count == 15 and fid.fake.count == 15
    assert fid.compute() == pytest.approx(0.0, abs=1e-9)
    fid.fake.__init__()
    fid.update([np.clip(v.astype(int) + 40, 0, 255).astype(np.uint8) for v in videos], real=False)
    assert fid.compute() > 100


def test_sample_frame_indices() -> None:
    assert sample_frame_indices(16, 4) == [0, 5, 10, 15]
    assert sample_frame_indices(3, 8) == [0, 1, 2]
    assert sample_frame_indices(9, 1) == [0]


def test_yes_probability_is_the_softmax_mass_of_the_yes_tokens() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]]))
    torch.testing.assert_close(yes_probability(logits, [1]), torch.tensor([0.2, 0.1]))
    torch.testing.assert_close(yes_probability(logits, [1, 2, 2]), torch.tensor([0.4, 0.2]))  # duplicates once


class _RecordingScorer:
    """P(yes) = the image's mean brightness / 255; records the questions it was asked."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def __call__(self, images, questions):
        self.questions += list(questions)
        return [float(np.asarray(im).mean()) / 255 for im in images]


def test_vqascore_question_formatting_and_video_averaging() -> None:
    scorer = _RecordingScorer()
    metric = VQAScore(scorer, frames=3, batch_size=2)
    dark_to_light = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 51, 102, 153, 204)])
    constant = np.full((4, 8, 8, 3), 255, np.uint8)
    scores = metric.videos([dark_to_light, constant], ["Fold the towel.", "open the jar"])
    # Frames 0, 2, 4 of the first clip (0, 102, 204 -> mean 102/255); every frame of the second is white.
    np.testing.assert_allclose(scores, [102 / 255, 1.0])
    assert scorer.questions[0] == 'Does this figure show "Fold the towel"? Please answer yes or no.'
    assert scorer.questions[-1] == 'Does this figure show "open the jar"? Please answer yes or no.'
    assert len(scorer.questions) == 6
    paper = VQAScore(scorer, question="Does this figure show {instruction}?")
    assert paper.questions(["cut the bread."]) == ["Does this figure show cut the bread?"]
    with pytest.raises(InvalidInputError, match="cannot be paired"):
        metric.images([Image.new("RGB", (4, 4))], ["a", "b"])


class _Tokenizer:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return {"Yes": [3], " Yes": [4, 9]}[text]


class _Batch(dict):
    def to(self, device):
        return self


class _Processor:
    tokenizer = _Tokenizer()

    def apply_chat_template(self, conversation, add_generation_prompt: bool) -> str:
        assert add_generation_prompt and conversation[0]["content"][0] == {"type": "image"}
        return "USER: <image> " + conversation[0]["content"][1]["text"] + " ASSISTANT:"

    def __call__(self, images, text, return_tensors, padding):
        self.prompts = text
        return _Batch(pixel_values=torch.zeros(len(images), 3, 4, 4))


class _Model(torch.nn.Module):
    """Answers with fixed first-token logits; P(token 3) = 0.25, P(token 4) = 0.25."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def generate(self, pixel_values, max_new_tokens, do_sample, output_logits, return_dict_in_generate):
        assert max_new_tokens == 1 and output_logits and return_dict_in_generate and not do_sample
        logits = torch.log(torch.tensor([0.1, 0.2, 0.2, 0.25, 0.25])).expand(len(pixel_values), -1)
        return type("Out", (), {"logits": (logits,)})()


def test_transformers_vqa_reads_p_yes_from_the_first_token() -> None:
    processor = _Processor()
    vqa = TransformersVQA(_Model(), processor, device="cpu")
    assert vqa.yes_token_ids == [3, 4]  # first tokens of "Yes" and " Yes"
    scores = VQAScore(vqa).images([Image.new("RGB", (4, 4))] * 2, ["stir the soup", "peel it"])
    np.testing.assert_allclose(scores, [0.5, 0.5])
    assert processor.prompts[1] == 'USER: <image> Does this figure show "peel it"? Please answer yes or no. ASSISTANT:'


@pytest.fixture(scope="module")
def tiny_clip() -> FrameAverageCLIP:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from showme_i2g.text.tokenizers import load_clip_tokenizer

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=load_clip_tokenizer(),
    )
    return FrameAverageCLIP(CLIPModel(config), processor, frames=3, device="cpu")


def test_frame_average_clip_video_text_cosine(tiny_clip: FrameAverageCLIP) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    still = np.stack([frame] * 5)
    varied = rng.integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)
    videos = tiny_clip.video_embedder([still, varied])
    torch.testing.assert_close(videos.norm(dim=-1), torch.ones(2))
    # A still clip's embedding is its frame's; a varied clip's is the renormalised mean of its sampled frames.
    torch.testing.assert_close(videos[0], tiny_clip.image_embedder([Image.fromarray(frame)])[0], atol=1e-5, rtol=0)
    sampled = tiny_clip.image_embedder([Image.fromarray(varied[t]) for t in (0, 2, 4)])
    torch.testing.assert_close(videos[1], torch.nn.functional.normalize(sampled.mean(0), dim=0), atol=1e-5, rtol=0)
    metric = video_text_similarity(tiny_clip.video_embedder, tiny_clip.text_embedder)
    texts = ["cut the onion", "pour the water"]
    expected = (videos * tiny_clip.text_embedder(texts)).sum(dim=-1)
    torch.testing.assert_close(metric([still, varied], texts), expected, atol=1e-5, rtol=0)
