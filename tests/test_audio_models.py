"""The spectrogram CNN, the MNIST CNN and the two fusions of notebook 02."""

from __future__ import annotations

import pytest
import torch

from coursekit.audio.models import (
    AudioCNN,
    FeatureFusion,
    GradientReversal,
    ImageCNN,
    SpeakerAdversarial,
    late_fusion,
)
from coursekit.models import count_parameters
from coursekit.models.layers import layer_table


@pytest.mark.parametrize("head", ["flatten", "time_avg", "time_max"])
def test_audio_cnn_shapes(head):
    model = AudioCNN(n_mels=40, n_frames=126, channels=(8, 16, 32), hidden=24, head=head)
    x = torch.randn(5, 1, 40, 126)
    assert model(x).shape == (5, 10)
    assert model.embed(x).shape == (5, 24)
    # 3 blocks halve (40, 126) to (5, 15); time_avg keeps only the 5 frequency rows.
    fc = model.hidden[2]
    assert fc.in_features == 32 * 5 * (15 if head == "flatten" else 1)
    if head == "time_max":  # the max over time of the conv features, then the hidden layers
        model.eval()
        features = model.features(x).amax(dim=3, keepdim=True)
        assert torch.allclose(model.embed(x), model.hidden(features))


def test_audio_cnn_blocks_and_parameters_in_the_layer_table():
    model = AudioCNN(n_mels=40, n_frames=126)
    table = layer_table(model, (1, 40, 126))
    assert table["n_params"].sum() == count_parameters(model)
    assert (table["type"] == "Conv2d").sum() == 3 and (table["type"] == "MaxPool2d").sum() == 3
    assert table["output_shape"].iloc[-1] == (10,)


@pytest.mark.parametrize("head", ["time_avg", "time_max"])
def test_time_pooling_heads_ignore_where_the_word_is(head):
    torch.manual_seed(0)
    model = AudioCNN(n_mels=16, n_frames=64, channels=(8, 8), head=head).eval()
    x = torch.zeros(1, 1, 16, 64)
    x[..., 8:24] = torch.randn(1, 1, 16, 16)
    moved = torch.roll(x, 32, dims=3)  # the same word 32 frames later (a multiple of 4)
    assert torch.allclose(model(x), model(moved), atol=1e-5)
    flat = AudioCNN(n_mels=16, n_frames=64, channels=(8, 8), head="flatten").eval()
    assert not torch.allclose(flat(x), flat(moved), atol=1e-3)


def test_audio_cnn_checks_its_arguments():
    with pytest.raises(ValueError, match="head"):
        AudioCNN(head="max")
    with pytest.raises(ValueError, match="halve"):
        AudioCNN(n_mels=8, channels=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="1 to 5"):
        AudioCNN(channels=())


def test_image_cnn_shapes():
    model = ImageCNN(hidden=32)
    x = torch.randn(3, 1, 28, 28)
    assert model(x).shape == (3, 10) and model.embed(x).shape == (3, 32)


def test_feature_fusion_concatenates_both_embeddings():
    audio = AudioCNN(n_mels=16, n_frames=32, channels=(4, 8), hidden=12)
    image = ImageCNN(hidden=20)
    fusion = FeatureFusion(audio, image)
    assert fusion.classifier.in_features == 32
    out = fusion((torch.randn(4, 1, 16, 32), torch.randn(4, 1, 28, 28)))
    assert out.shape == (4, 10)
    with pytest.raises(ValueError, match="modality_dropout"):
        FeatureFusion(audio, image, modality_dropout=1.0)


def test_modality_dropout_acts_in_training_only():
    torch.manual_seed(0)
    audio = AudioCNN(n_mels=16, n_frames=32, channels=(4, 8), hidden=12, dropout=0.0)
    fusion = FeatureFusion(audio, ImageCNN(hidden=12, dropout=0.0), modality_dropout=0.9)
    seen = []
    fusion.classifier.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    inputs = (torch.randn(64, 1, 16, 32), torch.randn(64, 1, 28, 28))
    fusion.eval()
    fusion(inputs)
    assert (seen[-1][:, :12].abs().sum(1) > 0).all() and (seen[-1][:, 12:].abs().sum(1) > 0).all()
    fusion.train()
    fusion(inputs)
    audio_off = seen[-1][:, :12].abs().sum(1) == 0
    image_off = seen[-1][:, 12:].abs().sum(1) == 0
    assert audio_off.any() and image_off.any()  # each modality is switched off for some
    assert not (audio_off & image_off).any()  # never both at once


def test_late_fusion_rules():
    a = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]]))
    b = torch.log(torch.tensor([[0.5, 0.4, 0.1], [0.9, 0.05, 0.05]]))
    product = late_fusion(a, b, "product").exp()
    mean = late_fusion(a, b, "mean").exp()
    assert torch.allclose(product.sum(1), torch.ones(2))
    assert torch.allclose(mean.sum(1), torch.ones(2))
    expected = torch.tensor([0.35, 0.08, 0.01]) / 0.44
    assert torch.allclose(product[0], expected, atol=1e-6)
    assert torch.allclose(mean[1], torch.tensor([0.65, 0.275, 0.075]), atol=1e-6)
    # The confident image model (0.9) overrides the hesitant audio one (0.5 vs 0.4).
    assert product[1].argmax() == 0 and mean[1].argmax() == 0
    with pytest.raises(ValueError, match="rule"):
        late_fusion(a, b, "max")


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    GradientReversal.apply(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.full((3, 4), -0.5))


def test_speaker_adversarial_reads_digits_alone_and_scores_speakers_in_training():
    torch.manual_seed(0)
    net = SpeakerAdversarial(AudioCNN(n_mels=16, n_frames=32, channels=(4, 8), hidden=8), 3,
                             weight=0.3).eval()  # no dropout: outputs comparable
    x, speakers = torch.randn(5, 1, 16, 32), torch.tensor([0, 1, 2, 0, 1])
    logits = net(x)
    assert logits.shape == (5, 10) and float(net.penalty) == 0  # no speaker: no penalty
    assert torch.equal(net((x, speakers)), logits)  # the digits do not depend on speakers
    assert net.penalty > 0 and net.embed(x).shape == (5, 8)
    net.penalty.backward()
    # the speaker classifier descends its loss; the features climb it (reversed gradient)
    assert net.speaker[0].weight.grad.abs().sum() > 0
    assert net.net.classifier.weight.grad is None
    with pytest.raises(ValueError, match="speakers"):
        SpeakerAdversarial(net.net, 1, 0.3)
