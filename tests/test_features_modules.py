"""Any torch model's layers as features: forward hooks, pooling like D's, normalisation, errors."""
import numpy as np
import pytest
import torch
from torch import nn

from gan_probe.errors import ConfigError
from gan_probe.features.modules import InputNormalization, LayerTap, torchvision_model
from gan_probe.features.pooling import pooled_features
from gan_probe.models import Discriminator, preset_config


def test_hooks_on_a_discriminator_give_its_pooled_features():
    disc = Discriminator(preset_config("small32", ndf=8)).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tap = LayerTap(disc, ["features.0", "features.2"])
    torch.testing.assert_close(tap.features(x), pooled_features(disc, x, layers=[0, 2]))
    assert tap.dims((3, 32, 32)) == [8 * 16, 32 * 16]


def test_resnet18_layers_dims_and_a_two_dim_output():
    model, norm, info = torchvision_model("torchvision:resnet18", seed=3)
    assert info == {"source": "torchvision", "model": "resnet18", "weights": None, "init_seed": 3}
    assert norm.mean == (0.485, 0.456, 0.406)
    tap = LayerTap(model, ["layer1", "layer2"])
    assert sum(tap.dims((3, 32, 32))) == (64 + 128) * 16 == 3072
    assert LayerTap(model, ["fc"]).dims((3, 32, 32)) == [1000]       # (B, C) outputs are kept as they are
    again, _, _ = torchvision_model("torchvision:resnet18", seed=3)   # seeded random weights
    assert torch.equal(again.conv1.weight, model.conv1.weight)


def test_weights_files_load_and_bad_ones_are_one_line_errors(tmp_path):
    model, _, _ = torchvision_model("resnet18", seed=1)
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    loaded, _, info = torchvision_model("resnet18", weights=str(tmp_path / "r18.pt"), seed=2)
    assert torch.equal(loaded.layer4[1].conv2.weight, model.layer4[1].conv2.weight) and info["weights_sha256"]
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="does not match torchvision's resnet18"):
        torchvision_model("resnet18", weights=str(tmp_path / "bad.pt"))
    with pytest.raises(ConfigError, match="unknown torchvision model"):
        torchvision_model("torchvision:resnet9000")
    with pytest.raises(ConfigError, match="valid: conv1, bn1, relu, maxpool, layer1"):
        LayerTap(model, ["layer1", "nope"])


def test_the_forward_pass_stops_at_the_deepest_layer():
    calls = []
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Conv2d(2, 2, 1))
    net[1].register_forward_hook(lambda *a: calls.append(1))
    LayerTap(net, ["0"]).features(torch.zeros(1, 3, 4, 4))
    assert calls == []


def test_normalisation_of_uint8_images():
    batch = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8)   # (1, 1, 1, 3) NHWC
    np.testing.assert_allclose(InputNormalization().apply(batch).flatten().numpy(), [-1.0, 1.0, -0.6], atol=1e-6)
    imagenet = InputNormalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    np.testing.assert_allclose(imagenet.apply(batch).flatten().numpy(),
                               [(0 - 0.485) / 0.229, (1 - 0.456) / 0.224, (0.2 - 0.406) / 0.225], rtol=1e-5)


def test_extract_model_writes_a_store_the_probes_read(tmp_path, capsys):
    import json

    from gan_probe.cli import main
    from gan_probe.features import load_store
    from gan_probe.features.extract_module import extract_module_features

    out = tmp_path / "r18"
    argv = ["extract", "--model", "torchvision:resnet18", "--layers", "layer1,layer2", "--dataset", "digits",
            "--out", str(out), "--no-progress", "--batch-size", "512"]
    assert main(argv) == 0
    assert "3072 dims: layer1 1024, layer2 2048" in capsys.readouterr().out
    store = load_store(out)
    assert store.train_features.shape == (1347, 3072) and np.isfinite(store.train_features).all()
    meta = store.meta
    assert meta["source"] == "torchvision" and meta["model"] == "resnet18" and meta["weights"] is None
    assert meta["layer_names"] == ["layer1", "layer2"] and meta["layers"] == [0, 1]
    assert meta["normalization"]["mean"] == [0.485, 0.456, 0.406]
    # the features are the hooks' pooled outputs of the normalised images, whatever the batch size
    model, norm, _ = torchvision_model("resnet18", seed=0)
    from gan_probe.data import load_split

    images = torch.from_numpy(np.ascontiguousarray(load_split("digits", None, "test").images[:5]))
    expected = LayerTap(model, ["layer1", "layer2"]).features(norm.apply(images))
    np.testing.assert_allclose(store.test_features[:5], expected.numpy(), rtol=1e-4, atol=1e-5)
    # the same inputs reuse the store; layers by name through svm --layers by index
    before = (out / "meta.json").read_text()
    from gan_probe.features import ExtractOptions

    extract_module_features("torchvision:resnet18", ["layer1", "layer2"], dataset="digits", out=out,
                            options=ExtractOptions(batch_size=512))
    assert (out / "meta.json").read_text() == before
    assert main(["svm", "--features", str(out), "--layers", "1", "--C", "0.01", "--no-progress",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n_features"] == 2048
    capsys.readouterr()
    assert main(["extract", "--model", "torchvision:resnet18", "--dataset", "digits", "--out",
                 str(tmp_path / "x"), "--no-progress"]) == 2
    assert "name the layers to pool with --layers" in capsys.readouterr().err
