"""TF1-compatible bilinear resize: hand-computed cases and parity with torch-fidelity's implementation."""
import pytest
import torch
import torch.nn.functional as F

from gan_probe.metrics.resize import tf1_bilinear_resize, tf1_interpolation_weights


def test_upscale_2x2_to_3x3_by_hand():
    # scale = 2/3: output 0 -> src 0; output 1 -> src 2/3 (lerp 2/3 between 0 and 1); output 2 -> src 4/3 (clamped)
    x = torch.tensor([[[[0.0, 10.0], [20.0, 30.0]]]])
    expected = torch.tensor([[0.0, 20 / 3, 10.0],
                             [40 / 3, 20.0, 70 / 3],
                             [20.0, 80 / 3, 30.0]])
    torch.testing.assert_close(tf1_bilinear_resize(x, (3, 3))[0, 0], expected, rtol=0, atol=1e-5)


def test_downscale_skips_pixels_without_antialias():
    # 4 -> 2: scale 2, outputs read source pixels 0 and 2 exactly (no averaging of neighbours)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert tf1_bilinear_resize(x, (2, 2))[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]


def test_non_square_and_per_axis_weights():
    lo, hi, w = tf1_interpolation_weights(3, 4)  # scale 0.75: src = 0, .75, 1.5, 2.25
    assert lo.tolist() == [0, 0, 1, 2] and hi.tolist() == [1, 1, 2, 2]
    assert w.tolist() == pytest.approx([0.0, 0.75, 0.5, 0.25])
    x = torch.tensor([[[[0.0, 4.0, 8.0], [12.0, 16.0, 20.0]]]])     # H=2, W=3 -> H=1, W=4
    out = tf1_bilinear_resize(x, (1, 4))
    assert out.shape == (1, 1, 1, 4) and out[0, 0, 0].tolist() == pytest.approx([0.0, 3.0, 6.0, 8.0])


def test_differs_from_half_pixel_interpolate():
    x = torch.rand(1, 3, 32, 32) * 255
    ours = tf1_bilinear_resize(x, (299, 299))
    torch_half_pixel = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert (ours - torch_half_pixel).abs().max() > 1.0


def test_matches_torch_fidelity_tf1_resize():
    compat = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")
    x = torch.randint(0, 256, (2, 3, 32, 28)).float()
    ref = compat.interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    torch.testing.assert_close(tf1_bilinear_resize(x, (299, 299)), ref, rtol=0, atol=1e-4)


def test_same_size_is_identity_and_integer_input_is_rejected():
    x = torch.rand(1, 3, 5, 5)
    assert tf1_bilinear_resize(x, (5, 5)) is x
    with pytest.raises(ValueError, match="floating-point"):
        tf1_bilinear_resize(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (8, 8))
