"""`gan-probe convert dcgan-code`: the DCGAN authors' released models as checkpoints.

The tests write small sets of .npy files in the release format (random arrays of the released shapes); the
authors' own files are never needed.
"""
import hashlib
import io
import json
import pickle
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from gan_probe.models.checkpoint import load_models
from gan_probe.cli import main
from gan_probe.convert import dcgan_code
from gan_probe.convert.dcgan_code import MODELS, convert, save_converted, theano_conv_to_torch
from gan_probe.errors import CheckpointError, ConfigError, DataError
from gan_probe.features import extract_features, load_store


def write_release(directory, model="svhn", skip=(), seed=0, shapes=None):
    """The discriminator arrays of a released model, in its file names and order, random values."""
    spec = MODELS[model]
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for index, param in enumerate(spec.discriminator, start=1):
        if index in skip:
            continue
        shape = (shapes or {}).get(index, param.shape)
        if param.kind == "bn_weight":
            array = 1 + 0.1 * rng.standard_normal(shape)
        else:
            array = 0.05 * rng.standard_normal(shape)
        np.save(directory / dcgan_code.discrim_file(spec.epoch, index), array.astype(np.float32))
    return directory


def test_theano_kernels_are_flipped_for_torch_on_a_hand_computed_case():
    # x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], kernel [[1, 2], [3, 4]], no padding. Theano's dnn_conv convolves
    # (conv_mode 'conv'): out[i, j] = sum_uv x[i + u, j + v] * w[1 - u, 1 - v], so out[0, 0] = 1*4 + 2*3 + 4*2 +
    # 5*1 = 23, out[0, 1] = 2*4 + 3*3 + 5*2 + 6*1 = 33, out[1, 0] = 53, out[1, 1] = 63. torch correlates:
    # with the kernel as released it would give 1*1 + 2*2 + 4*3 + 5*4 = 37 at (0, 0).
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=np.float32)
    assert F.conv2d(x, torch.from_numpy(w)).flatten().tolist() == [37.0, 47.0, 67.0, 77.0]
    assert F.conv2d(x, theano_conv_to_torch(w)).flatten().tolist() == [23.0, 33.0, 53.0, 63.0]
    assert convolve2d(x[0, 0].numpy(), w[0, 0], mode="valid").flatten().tolist() == [23.0, 33.0, 53.0, 63.0]


def test_the_converted_first_layer_is_the_true_convolution_with_stride_and_padding(tmp_path):
    path, _ = save_converted(write_release(tmp_path / "svhn"), tmp_path / "svhn.pt")
    disc = load_models(path).discriminator
    w = np.load(tmp_path / "svhn" / "200_discrim_params.jl_01.npy")  # (64, 3, 5, 5)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    padded = np.pad(x[0].numpy().astype(np.float64), ((0, 0), (2, 2), (2, 2)))
    for out_ch in (0, 17, 63):  # Theano: border (2, 2), subsample (2, 2), conv_mode 'conv'
        expected = sum(convolve2d(padded[c], w[out_ch, c], mode="valid") for c in range(3))[::2, ::2]
        got = disc.features[0][0](x)[0, out_ch].detach().double().numpy()
        assert got.shape == (16, 16)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_released_svhn_layout_converts_to_the_svhn32_preset(tmp_path):
    release = write_release(tmp_path / "svhn")
    path, state = save_converted(release, tmp_path / "svhn.pt")
    models = load_models(path)
    assert models.config.preset == "svhn32" and models.generator is None and models.missing_layers == []
    assert models.discriminator.feature_channels == [64, 128, 256]
    wy = np.load(release / "200_discrim_params.jl_08.npy")
    assert torch.equal(models.discriminator.head.weight.flatten(), torch.from_numpy(wy[:, 0]))
    g2 = np.load(release / "200_discrim_params.jl_03.npy")
    assert torch.equal(models.discriminator.features[1][1].weight, torch.from_numpy(g2))
    info = state["converted"]
    assert info["model"] == "svhn" and info["commit"] == dcgan_code.COMMIT and info["epoch"] == 200
    assert info["sha256"]["200_discrim_params.jl_05.npy"] == hashlib.sha256(
        (release / "200_discrim_params.jl_05.npy").read_bytes()).hexdigest()
    # the head is the authors' dense layer on the flattened (channel, row, column) map
    h = torch.randn(2, 256, 4, 4)
    assert torch.allclose(F.linear(h.flatten(1), models.discriminator.head.weight.flatten(1)).flatten(),
                          (h.flatten(1) @ torch.from_numpy(wy)).flatten(), atol=1e-5)


def test_bgr_conversion_reads_rgb_images_as_the_model_read_bgr(tmp_path):
    release = write_release(tmp_path / "svhn")
    rgb = load_models(save_converted(release, tmp_path / "rgb.pt")[0]).discriminator
    bgr = load_models(save_converted(release, tmp_path / "bgr.pt", channel_order="bgr")[0]).discriminator
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(bgr.features[0](x), rgb.features[0](x.flip(1)), atol=1e-6)
    assert not torch.allclose(bgr.features[0](x), rgb.features[0](x), atol=1e-3)


def test_the_pickle_is_never_loaded(tmp_path):
    release = write_release(tmp_path / "svhn")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (release / "200_discrim_params.jl").write_bytes(pickle.dumps(Payload()))
    save_converted(release, tmp_path / "svhn.pt")
    assert not marker.exists()


def test_unknown_shapes_and_folders_are_one_line_errors(tmp_path):
    bad = write_release(tmp_path / "bad", shapes={2: (96, 64, 5, 5)})
    with pytest.raises(DataError, match=r"closest is svhn .*jl_02\.npy has shape \(96, 64, 5, 5\), its w2 has "
                                        r"\(128, 64, 5, 5\)"):
        convert(bad)
    with pytest.raises(DataError, match="no EPOCH_discrim_params"):
        convert(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        convert(tmp_path / "nowhere")
    objects = write_release(tmp_path / "objects")
    np.save(objects / "200_discrim_params.jl_03.npy", np.array(["x"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="jl_03.npy: not a readable .npy array"):
        convert(objects)


@pytest.fixture(scope="module")
def partial_imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("in32")
    release = write_release(root / "imagenet32", model="imagenet32", skip=(11, 14))
    path, state = save_converted(release, root / "in32.pt")
    return path, state


def test_a_partial_set_knows_which_layers_are_real(partial_imagenet):
    path, state = partial_imagenet
    assert state["missing"]["layers"] == [4, 5]
    assert state["missing"]["files"] == ["30_discrim_params.jl_11.npy", "30_discrim_params.jl_14.npy"]
    models = load_models(path)
    assert models.config.preset == "paper32" and models.missing_layers == [4, 5]
    disc = models.discriminator
    assert torch.isnan(disc.features[4][0].weight).all() and torch.isnan(disc.features[5][0].weight).all()
    assert torch.isfinite(disc.features[3][0].weight).all()
    models.require_layers([0, 1, 2, 3])
    with pytest.raises(CheckpointError, match=r"all layers \(the default\) needs conv5, conv6, whose weights are "
                                              r"missing \(30_discrim_params.jl_11.npy, 30_discrim_params.jl_14.npy"):
        models.require_layers([0, 1, 2, 3, 4, 5])
    with pytest.raises(CheckpointError, match=r"--layers 1,4 needs conv5, conv6.*use --layers 0,1,2,3"):
        models.require_layers([1, 4])
    with pytest.raises(CheckpointError, match="holds no generator .*not converted"):
        models.require_generator()


def test_extracting_a_partial_set(partial_imagenet, tmp_path, capsys):
    path, _ = partial_imagenet
    root = extract_features(path, dataset="digits", out=tmp_path / "feats", layers=(0, 1, 2, 3), batch_size=512)
    store = load_store(root)
    assert store.train_features.shape[1] == 12288 and np.isfinite(store.train_features).all()
    assert store.meta["converted"]["model"] == "imagenet32" and store.meta["layers"] == [0, 1, 2, 3]
    for argv, expected in (
            ([], "all layers (the default) needs conv5, conv6, whose weights are missing"),
            (["--layers", "0,5"], "--layers 0,5 needs conv5, conv6"),
            (["--layers", "0", "--bn", "checkpoint"], "holds no batch-norm running statistics")):
        assert main(["extract", "--checkpoint", str(path), "--dataset", "digits", "--out", str(tmp_path / "x"),
                     "--no-progress", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "x").exists()


def test_sampling_from_a_converted_checkpoint_is_refused(partial_imagenet, tmp_path, capsys):
    path, _ = partial_imagenet
    assert main(["viz", "samples", "--checkpoint", str(path), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no generator (not converted" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.png").exists()


def test_the_command_line(tmp_path, capsys):
    release = write_release(tmp_path / "svhn")
    assert main(["convert", "dcgan-code", str(release), "--out", str(tmp_path / "svhn.pt")]) == 0
    assert "svhn discriminator (epoch 200) as preset svhn32" in capsys.readouterr().out
    assert main(["convert", "dcgan-code", str(release), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


class _Response(io.BytesIO):
    headers = {}

    def __enter__(self):
        return self


def test_download_checks_known_files_by_sha256_and_others_by_header(tmp_path, monkeypatch):
    source = write_release(tmp_path / "source", model="imagenet32")
    spec = MODELS["imagenet32"]
    known = {name: hashlib.sha256((source / name).read_bytes()).hexdigest() for name in spec.files()
             if name not in ("30_discrim_params.jl_11.npy", "30_discrim_params.jl_14.npy")}
    monkeypatch.setattr(dcgan_code, "MODELS", {**MODELS, "imagenet32": type(spec)(**{**spec.__dict__,
                                                                                      "sha256": known})})
    served = []

    def fake_urlopen(url, timeout):
        name = url.rsplit("/", 1)[1]
        assert url.startswith(f"https://raw.githubusercontent.com/Newmu/dcgan_code/{dcgan_code.COMMIT}/models/")
        served.append(name)
        return _Response((source / name).read_bytes())

    monkeypatch.setattr("gan_probe.data.download.urlopen", fake_urlopen)
    target = tmp_path / "imagenet32"
    path, state = save_converted(target, tmp_path / "in32.pt", download=True)
    assert len(served) == 17 and "missing" not in state
    assert load_models(path).missing_layers == []
    # a known file whose bytes differ is refused and not saved
    good = (target / "30_discrim_params.jl_02.npy").read_bytes()
    (target / "30_discrim_params.jl_02.npy").unlink()
    np.save(source / "30_discrim_params.jl_02.npy", np.zeros((128, 128, 3, 3), np.float32))
    with pytest.raises(DataError, match="jl_02.npy: downloaded file has sha256"):
        save_converted(target, tmp_path / "again.pt", download=True)
    assert not (target / "30_discrim_params.jl_02.npy").exists()
    # a file without a known hash is checked by its header
    (target / "30_discrim_params.jl_02.npy").write_bytes(good)
    (target / "30_discrim_params.jl_11.npy").unlink()
    np.save(source / "30_discrim_params.jl_11.npy", np.zeros((512, 256, 5, 5), np.float32))
    with pytest.raises(DataError, match=r"jl_11.npy: .npy header says float32 \(512, 256, 5, 5\), expected float32 "
                                        r"\(512, 256, 3, 3\)"):
        dcgan_code.download_release(target)


def test_download_offline_names_the_files_and_where_to_put_them(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise URLError("Name or service not known")

    monkeypatch.setattr("gan_probe.data.download.urlopen", offline)
    with pytest.raises(DataError) as info:
        save_converted(tmp_path / "svhn", tmp_path / "svhn.pt", download=True)
    message = str(info.value)
    assert "offline?" in message and "200_discrim_params.jl_08.npy" in message
    assert str(tmp_path / "svhn") in message and "\n" not in message
    with pytest.raises(DataError, match="cannot tell which release"):
        dcgan_code.download_release(tmp_path / "elsewhere")


def test_a_converted_checkpoint_is_not_a_training_run(partial_imagenet, tmp_path):
    from gan_probe.training import TrainConfig, train

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(partial_imagenet[0].read_bytes())
    with pytest.raises((CheckpointError, ConfigError), match="converted from the DCGAN authors' imagenet32"):
        train(TrainConfig(dataset="digits", preset="paper32", max_steps=1), run, resume=True)


def test_select_store_layers_through_the_svm_command(tmp_path, capsys):
    from gan_probe.features import save_store

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 20)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    x[:, 4:] += 10 * y[:, None]  # only conv3 (columns 4-5) separates the classes
    meta = {"dataset": "toy", "layers": [0, 1, 2], "layer_names": ["conv1", "conv2", "conv3"],
            "dims_per_layer": {"conv1": 2, "conv2": 2, "conv3": 2}}
    root = save_store(tmp_path / "s", x, y, x, y, meta)
    out = tmp_path / "r.json"
    assert main(["svm", "--features", str(root), "--layers", "2", "--C", "1", "--no-progress",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_features"] == 2 and result["accuracy"] == 1.0
    assert result["features_meta"]["layers"] == [2] and result["features_meta"]["selected_from"]["layers"] == [0, 1, 2]
    capsys.readouterr()
    assert main(["svm", "--features", str(root), "--layers", "0,3", "--no-progress"]) == 2
    assert "--layers 0,3: " in capsys.readouterr().err
