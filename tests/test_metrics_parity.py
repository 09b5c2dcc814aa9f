"""Parity with torch-fidelity 0.4.0 on one random-weight network saved in the reference state-dict layout.

torch-fidelity's features are computed once per module; every comparison reuses them.
"""
import numpy as np
import pytest
import torch

from gan_probe.metrics.evaluate import inception_score_of, reference_extractor
from gan_probe.metrics.extractors import extract
from gan_probe.metrics.inception_net import InceptionV3TF
from gan_probe.metrics.inception_score import ISConventions, inception_score
from gan_probe.metrics.sources import ArraySource
from gan_probe.metrics.weights import random_reference_state_dict

tf_fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
tf_isc = pytest.importorskip("torch_fidelity.metric_isc")

N = 20


def _images(n: int, seed: int) -> np.ndarray:
    """Smooth random colour fields at 32x32 (diverse enough to give distinct Inception outputs)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randint(0, 256, (n, 3, 4, 4), generator=g).float()
    up = torch.nn.functional.interpolate(low, size=(32, 32), mode="bilinear", align_corners=False)
    noise = torch.randint(-20, 21, up.shape, generator=g)
    return (up + noise).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    images = _images(N, 1)
    state = random_reference_state_dict(seed=3)
    net = InceptionV3TF().eval()
    net.load_state_dict(state)
    with torch.no_grad():  # centre the classifier on these images so p(y|x) varies (IS well above 1)
        pool = net(torch.from_numpy(images[:4]).permute(0, 3, 1, 2)).pool.double()
    mean = pool.mean(0)
    w = state["fc.weight"].double()
    w = w - torch.outer(w @ mean / (mean @ mean), mean)
    spread = ((pool - mean) @ w.T).std()
    state["fc.weight"] = (w * (4.0 / spread)).float()
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(state, path)
    ref = tf_fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                            feature_extractor_weights_path=str(path))
    with torch.no_grad():
        ref_pool, ref_logits = ref(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    extractor = reference_extractor(path, "cpu", download=False)
    ours = extract(ArraySource(images), extractor, batch_size=N, outputs=("pool", "logits"))
    return {"images": images, "path": path, "extractor": extractor, "ref_pool": ref_pool.numpy(),
            "ref_logits": ref_logits, "ours": ours, "state_keys": list(ref.state_dict())}


def test_state_dict_layout_matches_reference():
    keys = list(InceptionV3TF().state_dict())
    assert len(keys) == 566
    assert keys[0] == "Conv2d_1a_3x3.conv.weight" and keys[-2:] == ["fc.weight", "fc.bias"]


def test_same_layout_as_torch_fidelity(setup):
    assert setup["state_keys"] == list(InceptionV3TF().state_dict())
    assert setup["extractor"].info["reference"] is False  # random weights are flagged as non-reference


def test_features_equal_torch_fidelity(setup):
    np.testing.assert_allclose(setup["ours"]["pool"], setup["ref_pool"], rtol=1e-4, atol=1e-6)
    scale = np.abs(setup["ref_logits"].numpy()).max()
    np.testing.assert_allclose(setup["ours"]["logits"], setup["ref_logits"].numpy(), rtol=1e-4, atol=1e-5 * scale)


def test_inception_score_one_split_equals_torch_fidelity(setup):
    ref = tf_isc.isc_features_to_metric(setup["ref_logits"], splits=1, shuffle=True, rng_seed=2020)
    ours = inception_score(setup["ours"]["logits"], splits=1)
    assert ours.mean > 1.5  # a non-degenerate score, so the comparison means something
    assert ours.mean == pytest.approx(ref["inception_score_mean"], rel=1e-4)


def test_inception_score_default_conventions_equal_torch_fidelity(setup):
    """End to end (source -> extractor -> IS) with the defaults, at another batch size than the features."""
    ref = tf_isc.isc_features_to_metric(setup["ref_logits"], splits=10, shuffle=True, rng_seed=2020)
    ours = inception_score_of(ArraySource(setup["images"]), setup["extractor"], ISConventions(), batch_size=7)
    assert ours["conventions"]["splits"] == 10 and ours["conventions"]["split_seed"] == 2020
    assert ours["conventions"]["std_ddof"] == 0 and ours["conventions"]["shuffle"] is True
    assert ours["inception_score_mean"] == pytest.approx(ref["inception_score_mean"], rel=1e-4)
    assert ours["inception_score_std"] == pytest.approx(ref["inception_score_std"], rel=1e-3, abs=1e-6)
    setup["batch7"] = ours


def test_scores_do_not_depend_on_batch_size(setup):
    batch7 = setup.get("batch7") or inception_score_of(ArraySource(setup["images"]), setup["extractor"],
                                                       ISConventions(), batch_size=7)
    batch20 = inception_score(setup["ours"]["logits"])
    assert batch7["inception_score_mean"] == pytest.approx(batch20.mean, rel=1e-5)
    assert batch7["split_scores"] == pytest.approx(batch20.split_scores, rel=1e-5)


def test_shuffling_is_applied(setup):
    shuffled, plain = inception_score(setup["ours"]["logits"]), inception_score(setup["ours"]["logits"], shuffle=False)
    assert shuffled.split_scores != pytest.approx(plain.split_scores, rel=1e-6)
