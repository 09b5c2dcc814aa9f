import math

import numpy as np
import pytest
import torch

from gan_probe.models.checkpoint import load_models
from gan_probe.errors import ConfigError
from gan_probe.models import Discriminator, preset_config
from gan_probe.viz import (arithmetic_figure, dataset_images, filters_figure, guided_backprop, interpolate,
                           interpolate_figure, interpolation_path, latent_arithmetic, nearest_neighbours,
                           neighbours_figure, receptive_fields, sample_grid, samples_figure, save_figure,
                           top_activations)
from gan_probe.viz.common import decode, latents, mosaic, to_model_input
from gan_probe.viz.filters import crop
from viz_checkpoints import tiny_checkpoint

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=["normal", "uniform", "mog"])
def models(request, tmp_path_factory):
    path = tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / f"{request.param}.pt", latent=request.param)
    return load_models(path)


@pytest.fixture(scope="module")
def mog(tmp_path_factory):
    return load_models(tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "mog.pt", latent="mog"))


@pytest.fixture(scope="module")
def digits():
    images, _ = dataset_images("digits", None, "train", 32, limit=200, seed=0)
    return images


def test_samples_are_seeded_and_vary(models):
    z, images = sample_grid(models, n=6, seed=3)
    z2, images2 = sample_grid(models, n=6, seed=3)
    assert torch.equal(z, z2) and torch.equal(images, images2)
    assert images.shape == (6, 3, 32, 32)
    assert float(images.std(0).mean()) > 0.05  # different codes, different images
    assert not torch.equal(sample_grid(models, n=6, seed=4)[0], z)


def test_interpolation_endpoints_reproduce_samples(models):
    rows, steps = 3, 5
    result = interpolate(models, rows=rows, steps=steps, seed=1)
    assert result.mode == ("slerp" if models.config.latent == "normal" else "linear")
    assert result.z.shape == (rows, steps, 16) and result.images.shape == (rows, steps, 3, 32, 32)
    ends = latents(models.generator.prior, 2 * rows, 1)
    assert torch.equal(result.z[:, 0], ends[:rows]) and torch.equal(result.z[:, -1], ends[rows:])
    assert torch.equal(result.images[:, 0], decode(models.generator, ends[:rows]))
    assert torch.equal(result.images[:, -1], decode(models.generator, ends[rows:]))
    # the inner steps really move between them
    assert not torch.equal(result.images[:, 1], result.images[:, 0])


def test_linear_and_spherical_paths():
    z0, z1 = torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 3.0]])
    lin = interpolation_path(z0, z1, 5, "linear")
    assert torch.allclose(lin[0, 2], (z0[0] + z1[0]) / 2)
    sph = interpolation_path(z0, z1, 5, "slerp")
    assert torch.allclose(sph[0].norm(dim=1), torch.full((5,), 3.0))  # stays on the sphere
    assert torch.allclose(sph[0, 2], torch.tensor([3 / math.sqrt(2), 0.0, 3 / math.sqrt(2)]))
    angles = torch.arccos((sph[0, 1:] * sph[0, :-1]).sum(1) / 9)
    assert torch.allclose(angles, torch.full((4,), math.pi / 8), atol=1e-6)  # constant angular speed
    parallel = interpolation_path(z0, 2 * z0, 3, "slerp")  # degenerate: falls back to the line
    assert torch.allclose(parallel[0, 1], 1.5 * z0[0])
    with pytest.raises(ConfigError, match="--mode"):
        interpolation_path(z0, z1, 3, "cubic")
    with pytest.raises(ConfigError, match="--steps"):
        interpolation_path(z0, z1, 1)


def test_arithmetic_values_and_shapes(models):
    r = latent_arithmetic(models, a=[1, 2, 3], b=[4], c=[5, 6], grid_seed=2, grid_n=16, perturb=0.25,
                          variations=4, seed=0)
    grid_z, _ = sample_grid(models, n=16, seed=2)
    assert torch.equal(r.grid_z, grid_z)  # the same grid as `viz samples --seed 2 --n 16`
    assert r.means.shape == (3, 16)
    assert torch.allclose(r.means[0], grid_z[[1, 2, 3]].mean(0)) and torch.equal(r.means[1], grid_z[4])
    assert torch.allclose(r.result_z[0], r.means[0] - r.means[1] + r.means[2])
    assert r.result_z.shape == (5, 16) and r.result_images.shape == (5, 3, 32, 32)
    noise = r.result_z[1:] - r.result_z[0]
    assert float(noise.abs().max()) <= 0.25 and float(noise.abs().max()) > 0.2
    assert [len(x) for x in r.concept_images] == [3, 1, 2] and r.mean_images.shape == (3, 3, 32, 32)
    assert torch.equal(r.concept_images[2], decode(models.generator, grid_z[[5, 6]]))
    with pytest.raises(ConfigError, match="--c 5,16"):
        latent_arithmetic(models, a=[1], b=[2], c=[5, 16], grid_n=16)


def test_mosaic_layout():
    tiles = np.stack([np.full((2, 3, 3), i, dtype=np.float32) for i in range(5)])
    out = mosaic(tiles, nrow=2, pad=1, fill=-1)
    assert out.shape == (3 * 2 + 2, 2 * 3 + 1, 3)
    assert out[0, 0, 0] == 0 and out[0, 4, 0] == 1 and out[3, 0, 0] == 2 and out[6, 0, 0] == 4
    assert out[6, 4, 0] == -1 and out[2, 0, 0] == -1  # empty cell and padding


@pytest.mark.parametrize("preset", ["small32", "paper32", "dcgan64"])
def test_receptive_fields_match_gradients(preset):
    torch.manual_seed(0)
    cfg = preset_config(preset, ngf=4, ndf=4)
    disc = Discriminator(cfg).eval()
    size = cfg.image_size
    fields = receptive_fields(disc)
    for layer, rf in enumerate(fields):
        x = torch.randn(1, 3, size, size, requires_grad=True)
        act = disc.forward_features(x)[layer]
        i, j = act.shape[2] // 2, act.shape[3] - 1  # an inner row, the last column (touches the padding)
        act[0, 0, i, j].backward()
        rows = torch.nonzero(x.grad[0].abs().sum((0, 2))).flatten()
        cols = torch.nonzero(x.grad[0].abs().sum((0, 1))).flatten()
        top, left, span = rf.box(i, j)
        assert (int(rows.min()), int(rows.max())) == (max(top, 0), min(top + span - 1, size - 1))
        assert (int(cols.min()), int(cols.max())) == (max(left, 0), min(left + span - 1, size - 1))


def test_paper32_receptive_fields():
    fields = receptive_fields(Discriminator(preset_config("paper32")))
    assert [rf.size for rf in fields] == [3, 5, 9, 13, 21, 29] and [rf.jump for rf in fields] == [1, 2, 2, 4, 4, 8]


def test_crop_pads_outside_the_image():
    image = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    patch = crop(image, -1, 2, 3, fill=-1)
    assert patch[..., 0].tolist() == [[-1, -1, -1], [2, 3, -1], [6, 7, -1]]


def test_guided_backprop_of_a_first_layer_unit_is_its_filter():
    torch.manual_seed(0)
    disc = Discriminator(preset_config("small32", ndf=4)).eval()
    image = torch.rand(3, 32, 32) * 2 - 1
    i, j, channel = 5, 7, 2
    grad = guided_backprop(disc, image, 0, channel, i, j)
    top, left, size = receptive_fields(disc)[0].box(i, j)
    with torch.no_grad():
        pre = disc.features[0][0](image[None])[0, channel, i, j]
    slope = 1.0 if pre > 0 else 0.2
    weight = disc.features[0][0].weight[channel].detach()
    assert torch.allclose(grad[:, top:top + size, left:left + size], slope * weight)
    outside = grad.clone()
    outside[:, top:top + size, left:left + size] = 0
    assert float(outside.abs().max()) == 0.0


def test_guided_backprop_blocks_negative_gradients():
    torch.manual_seed(1)
    disc = Discriminator(preset_config("small32", ndf=4)).eval()
    image = torch.rand(3, 32, 32) * 2 - 1
    guided = guided_backprop(disc, image, 2, 0, 1, 1)
    x = image[None].clone().requires_grad_(True)
    disc.forward_features(x)[2][0, 0, 1, 1].backward()
    assert guided.abs().sum() > 0 and not torch.allclose(guided, x.grad[0])  # differs from the plain gradient


def test_top_activations_match_brute_force_and_batch_size(digits):
    torch.manual_seed(0)
    disc = Discriminator(preset_config("small32", ndf=8)).eval()
    images = digits[:60]
    a = top_activations(disc, images, 1, [0, 3, 5], top=4, batch_size=7)
    b = top_activations(disc, images, 1, [0, 3, 5], top=4, batch_size=1000)
    assert torch.equal(a.images, b.images) and torch.equal(a.units, b.units)
    assert torch.allclose(a.values, b.values)
    with torch.no_grad():
        act = disc.forward_features(to_model_input(images))[1][:, [0, 3, 5]]
    peak = act.flatten(2).max(2).values.T  # (maps, N)
    order = torch.sort(-peak, dim=1, stable=True).indices[:, :4]
    assert torch.equal(a.images, order)
    for m in range(3):
        for k in range(4):
            r, c = a.units[m, k].tolist()
            assert torch.isclose(act[a.images[m, k], m, r, c], a.values[m, k], atol=1e-5)


def test_nearest_neighbours_find_an_inserted_copy(mog, digits):
    models = mog
    samples = sample_grid(models, n=3, seed=5)[1]
    copy = ((samples[1].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    images = np.concatenate([digits[:40], copy[None], digits[40:80]])
    found = nearest_neighbours(models, images, n=3, k=4, seed=5, batch_size=16)
    assert found.pixel_index.shape == found.feature_index.shape == (3, 4)
    assert found.pixel_index[1, 0] == 40 and found.pixel_distance[1, 0] < 0.05 * found.pixel_distance[1, 1]
    assert found.feature_index[1, 0] == 40
    # brute force over all images, and batch-size invariance
    flat = to_model_input(images).flatten(1).double()
    dist = torch.cdist(samples.flatten(1).double(), flat)
    assert np.array_equal(found.pixel_index, torch.sort(dist, dim=1, stable=True).indices[:, :4].numpy())
    assert np.allclose(found.pixel_distance, torch.sort(dist, dim=1).values[:, :4].numpy())
    again = nearest_neighbours(models, images, n=3, k=4, seed=5, batch_size=1000)
    assert np.array_equal(again.feature_index, found.feature_index)
    assert np.allclose(again.feature_distance, found.feature_distance)
    assert np.all(np.diff(found.feature_distance, axis=1) >= 0)


def _figures(models, digits):
    return {
        "samples": lambda seed: samples_figure(models, n=16, seed=seed, numbers=True),
        "interpolate": lambda seed: interpolate_figure(models, rows=3, steps=4, seed=seed),
        "arithmetic": lambda seed: arithmetic_figure(models, [0, 1], [2], [3, 4], grid_seed=seed, grid_n=8,
                                                     variations=3, seed=seed),
        "filters": lambda seed: filters_figure(models, digits[:50], layers=[0, 2], maps=2, top=3, seed=seed),
        "neighbours": lambda seed: neighbours_figure(models, digits[:50], n=3, k=2, seed=seed),
    }


def test_figures_write_png_and_pdf_deterministically(mog, digits, tmp_path):
    models = mog
    for name, make in _figures(models, digits).items():
        png = save_figure(make(0), tmp_path / f"{name}.png", dpi=60).read_bytes()
        assert png[:8] == PNG and len(png) > 2_000, name
        assert save_figure(make(0), tmp_path / f"{name}_again.png", dpi=60).read_bytes() == png, name
        assert save_figure(make(1), tmp_path / f"{name}_seed1.png", dpi=60).read_bytes() != png, name
    pdf = save_figure(_figures(models, digits)["interpolate"](0), tmp_path / "walk.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and len(pdf) > 2_000
    assert save_figure(_figures(models, digits)["interpolate"](0), tmp_path / "walk2.pdf").read_bytes() == pdf
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ConfigError, match="--out .*walk.jpg"):
        save_figure(_figures(models, digits)["interpolate"](0), tmp_path / "walk.jpg")


def test_filters_rejects_bad_layers(mog, digits):
    with pytest.raises(ConfigError, match="--layers 0,3"):
        filters_figure(mog, digits[:10], layers=[0, 3])
