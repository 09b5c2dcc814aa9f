"""End to end on the embedded digits data with a tiny configuration; a second run recomputes nothing."""
import json

from gan_probe.pipeline import run_pipeline
from gan_probe.pipeline.config import config_from_dict

TINY = {
    "name": "tiny", "seed": 0, "device": "cpu",
    "train": {"dataset": "digits", "preset": "small32", "ngf": 8, "ndf": 8, "nz": 16, "batch_size": 64,
              "max_steps": 6, "sample_every": 6, "checkpoint_every": 6},
    "probe": {"dataset": "digits", "protocols": ["full", "few-labels"], "labels_per_class": [5], "draws": 2,
              "C_grid": [0.001, 0.1]},
    "kmeans": {"enabled": True, "centroids": [8], "patches": 500},
    "baselines": {"random_d": True, "pixels": True},
    "metrics": {"fid": True, "inception_score": True, "samples": 20, "inception_weights": "/nonexistent.pth"},
    "report": {"formats": ["md", "csv"]},
}


def test_pipeline_end_to_end_and_cached_rerun(tmp_path):
    config = config_from_dict(TINY, "tiny")
    logs = []
    first = run_pipeline(config, tmp_path / "out", log=logs.append)
    names = [s.name for s in first.stages]
    for stage in ("train", "extract-dcgan", "extract-random-d", "pixels", "kmeans-8", "svm-dcgan-full",
                  "svm-kmeans-8-few-labels-5", "svm-pixels-full", "fid", "inception-score", "report"):
        assert stage in names
    by_name = {s.name: s for s in first.stages}
    assert by_name["fid"].skipped and by_name["inception-score"].skipped  # no weights: recorded, not fatal
    assert "--weights" not in by_name["inception-score"].skipped  # the pipeline has no such flag
    report = first.report.read_text()
    # labels name the non-preset widths, and what the GAN was trained on
    for row in ("| DCGAN (small32, ndf 8, ngf 8; trained on digits) + L2-SVM |",
                "| k-means (8 centroids) + L2-SVM |",
                "| Random-weight D (small32, ndf 8, ngf 8) + L2-SVM |", "| Raw pixels + L2-SVM |"):
        assert row in report
    assert (tmp_path / "out" / "report" / "figures").is_dir()
    result = json.loads((tmp_path / "out" / "results" / "svm-dcgan-full.json").read_text())
    assert 0.1 < result["accuracy"] <= 1.0 and result["n_test"] == 450

    second = run_pipeline(config, tmp_path / "out", log=lambda m: None)
    assert all(s.cached for s in second.stages), [s.name for s in second.stages if not s.cached]


REPRESENTATIONS = {
    **TINY, "name": "tiny-representations",
    "train": {**TINY["train"], "max_steps": 2, "sample_every": 2, "checkpoint_every": 2},
    "probe": {"dataset": "digits", "protocols": ["few-labels"], "labels_per_class": [5], "draws": 2,
              "C_grid": [0.01]},
    "kmeans": {"enabled": False},
    "metrics": {"fid": False, "inception_score": False},
    "vae": {"enabled": True, "ngf": 8, "ndf": 8, "nz": 8, "batch_size": 64, "max_steps": 2, "sample_every": 2,
            "checkpoint_every": 2},
    "knn": {"enabled": True, "k_grid": [1, 5], "T_grid": [0.1]},
    "report": {"formats": ["md"]},
}


def test_pipeline_with_a_vae_and_knn_results_beside_the_svm(tmp_path):
    from gan_probe.models.checkpoint import checkpoint_family, load_checkpoint

    config = config_from_dict(REPRESENTATIONS, "tiny")
    out = tmp_path / "out"
    first = run_pipeline(config, out, log=lambda m: None)
    names = [s.name for s in first.stages]
    assert names.index("train") < names.index("train-vae") < names.index("extract-vae")
    assert checkpoint_family(load_checkpoint(out / "vae" / "checkpoint.pt")) == "vae"
    assert json.loads((out / "features" / "vae" / "meta.json").read_text())["layer_names"] == [
        "conv1", "conv2", "conv3", "mu"]
    for store in ("dcgan", "vae", "random-d", "pixels"):  # a kNN result beside every SVM result
        svm = json.loads((out / "results" / f"svm-{store}-few-labels-5.json").read_text())
        knn = json.loads((out / "results" / f"knn-{store}-few-labels-5.json").read_text())
        assert knn["classifier"] == "knn" and names.index(f"knn-{store}-few-labels-5") == names.index(
            f"svm-{store}-few-labels-5") + 1
        for key in ("protocol", "labels_per_class", "draws", "n_train", "n_test"):
            assert knn[key] == svm[key], key
    report = first.report.read_text()
    assert "Representations compared: a linear L2-SVM and kNN on the same features" in report
    assert "| VAE (small32, ndf 8, ngf 8; trained on digits) | " in report

    second = run_pipeline(config, out, log=lambda m: None)
    assert all(s.cached for s in second.stages), [s.name for s in second.stages if not s.cached]
