"""Inception Score as a pure function of class probabilities / logits."""
import numpy as np
import pytest
import torch

from gan_probe.metrics.inception_score import (ISConventions, grouped_inception_score, inception_score,
                                               inception_score_from_probs)


@pytest.mark.parametrize("k", [2, 7, 10])
def test_confident_uniform_classes_score_the_number_of_classes(k):
    probs = np.eye(k)[np.arange(50 * k) % k]
    assert inception_score_from_probs(probs, splits=1).mean == pytest.approx(k, rel=1e-12)
    # splits of consecutive rows that each hold every class equally often: every split scores k, std 0
    r = inception_score_from_probs(probs, splits=5, shuffle=False)
    assert r.split_scores == pytest.approx([k] * 5, rel=1e-12) and r.std == pytest.approx(0.0, abs=1e-12)


def test_identical_predictions_score_one():
    probs = np.tile([0.5, 0.3, 0.2], (40, 1))
    assert inception_score_from_probs(probs).mean == pytest.approx(1.0, abs=1e-12)


def test_logits_and_probabilities_agree():
    logits = np.random.default_rng(0).normal(0, 3, size=(60, 12))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    a, b = inception_score(logits, splits=3), inception_score_from_probs(probs, splits=3)
    assert a.split_scores == pytest.approx(b.split_scores, rel=1e-10)


def test_two_class_closed_form():
    # half the samples p = (0.9, 0.1), half (0.1, 0.9): marginal (0.5, 0.5), KL = 0.9 ln 1.8 + 0.1 ln 0.2
    probs = np.array([[0.9, 0.1], [0.1, 0.9]] * 10)
    expected = np.exp(0.9 * np.log(1.8) + 0.1 * np.log(0.2))
    assert inception_score_from_probs(probs, splits=1).mean == pytest.approx(expected, rel=1e-12)


def test_std_ddof_and_split_rule():
    logits = np.random.default_rng(1).normal(0, 2, size=(23, 5))
    pop, sample = inception_score(logits, splits=4), inception_score(logits, splits=4, std_ddof=1)
    assert pop.mean == sample.mean
    assert sample.std == pytest.approx(np.std(pop.split_scores, ddof=1)) and pop.std == pytest.approx(
        np.std(pop.split_scores))
    # split boundaries i*N//splits after RandomState(seed).permutation: recompute split 1 by hand
    order = np.random.RandomState(2020).permutation(23)
    part = logits[order][23 // 4: 2 * 23 // 4]
    p = np.exp(part) / np.exp(part).sum(1, keepdims=True)
    manual = np.exp((p * (np.log(p) - np.log(p.mean(0)))).sum(1).mean())
    assert pop.split_scores[1] == pytest.approx(manual, rel=1e-12)


def test_split_seed_changes_permutation_only():
    logits = np.random.default_rng(2).normal(0, 2, size=(40, 6))
    a, b = inception_score(logits, split_seed=1), inception_score(logits, split_seed=2)
    assert a.split_scores != pytest.approx(b.split_scores)
    assert inception_score(logits, splits=1, split_seed=1).mean == pytest.approx(
        inception_score(logits, splits=1, split_seed=2).mean, rel=1e-12)


def test_matches_torch_fidelity_metric_function():
    isc = pytest.importorskip("torch_fidelity.metric_isc")
    logits = np.random.default_rng(3).normal(0, 4, size=(101, 1008)).astype(np.float32)
    ref = isc.isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=True, rng_seed=2020)
    ours = inception_score(logits)
    assert ours.mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert ours.std == pytest.approx(ref["inception_score_std"], rel=1e-8)


def test_grouped_scores():
    probs_logits = np.log(np.eye(4)[np.arange(40) % 4] * 0.97 + 0.01)
    groups = np.array([0] * 20 + [1] * 17 + [2] * 3)
    out = grouped_inception_score(probs_logits, groups, splits=5)
    assert sorted(out) == [0, 1, 2] and out[2] is None      # 3 samples cannot fill 5 splits
    assert out[0].n == 20 and out[1].n == 17
    direct = inception_score(probs_logits[:20], splits=5)
    assert out[0].mean == pytest.approx(direct.mean, rel=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.zeros((5, 3)), splits=10)
    with pytest.raises(ValueError, match="shape"):
        inception_score(np.zeros(5))


class _FakeExtractor:
    """Logits from pixel statistics (no Inception forward): class 0 for dark images, 1 for bright ones."""

    provides = ("pool", "logits")
    device = torch.device("cpu")

    def __call__(self, images):
        bright = images.float().mean(dim=(1, 2, 3)) / 255
        logits = torch.stack([10 * (0.5 - bright), 10 * (bright - 0.5), torch.zeros_like(bright)], 1)
        return {"logits": logits, "pool": logits}

    def describe(self):
        return {"extractor": "fake"}


class _RedClassifier(torch.nn.Module):
    def forward(self, x):  # x in [-1, 1]: class 1 if the red channel is brighter than green
        r, g = x[:, 0].mean(dim=(1, 2)), x[:, 1].mean(dim=(1, 2))
        return torch.stack([g - r, r - g], 1)


def test_per_class_groups_by_classifier_or_labels(tmp_path):
    from gan_probe.errors import GanProbeError
    from gan_probe.metrics.evaluate import inception_score_of
    from gan_probe.metrics.sources import ArraySource

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 4, 4, 3), dtype=np.uint8)
    images[:10, :, :, 0] = 255          # 10 red images
    images[10:, :, :, 0] = 0
    torch.jit.script(_RedClassifier()).save(str(tmp_path / "clf.pt"))
    labels = np.repeat([0, 1, 2], 8)
    src = ArraySource(images, labels)
    by_clf = inception_score_of(src, _FakeExtractor(), ISConventions(splits=2), batch_size=5, per_class=True,
                                classifier=tmp_path / "clf.pt", trust_classifier_code=True)
    assert by_clf["per_class"]["grouping"].startswith("argmax of classifier")
    assert {k: v["n"] for k, v in by_clf["per_class"]["classes"].items()} == {"0": 14, "1": 10}
    by_label = inception_score_of(src, _FakeExtractor(), ISConventions(splits=2), per_class=True)
    assert by_label["per_class"]["grouping"] == "dataset labels"
    assert {k: v["n"] for k, v in by_label["per_class"]["classes"].items()} == {"0": 8, "1": 8, "2": 8}
    logits = _FakeExtractor()(torch.from_numpy(images).permute(0, 3, 1, 2))["logits"].numpy()
    assert by_label["per_class"]["classes"]["1"]["inception_score_mean"] == pytest.approx(
        inception_score(logits[8:16], splits=2).mean, rel=1e-12)
    with pytest.raises(GanProbeError, match="--classifier"):
        inception_score_of(ArraySource(images), _FakeExtractor(), ISConventions(splits=2), per_class=True)
