"""The pipeline validates every config value before its first stage (one line naming the TOML key, nothing
written, not even pipeline.json), and its stage keys follow the content of what each stage reads."""
import json

import pytest

from gan_probe.models.checkpoint import load_checkpoint
from gan_probe.cli import main
from gan_probe.errors import ConfigError
from gan_probe.features import load_store
from gan_probe.pipeline import run_pipeline
from gan_probe.pipeline.config import PipelineConfig, config_from_dict


pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.mark.parametrize("text, message", [
    ('name = "../elsewhere"\n', "name '../elsewhere': expected a single path component"),
    ('name = "a/b"\n', "name 'a/b': expected a single path component"),
    ('name = ""\n', "name '': expected a single path component"),
    ('device = "tpu"\n', "device 'tpu'"),
    ("[train]\nbeta1 = 1.5\n", "[train].beta1 must be in [0, 1), got 1.5"),
    ("[train]\nbeta1 = nan\n", "[train].beta1 must be in [0, 1), got nan"),
    ("[train]\nlr = -1\n", "[train].lr must be a positive number"),
    ("[train]\nbatch_size = 0\n", "[train].batch_size must be at least 1, got 0"),
    ("[train]\nmax_steps = -3\n", "[train].max_steps must be at least 0, got -3"),
    ("[train]\nlatent = 'cauchy'\n", "[train].latent 'cauchy': expected one of"),
    ("[train]\nimage_size = 48\n", "[train].image_size"),
    ("[probe]\nC_grid = [0.1, -1.0]\n", "[probe].C_grid value -1.0"),
    ("[probe]\nC_grid = [inf]\n", "[probe].C_grid value inf"),
    ("[probe]\nC = 'nan'\n", "[probe].C nan: C must be a positive number"),
    ("[probe]\ngrid = 100\n", "[probe].grid 100: larger than the 4x4 map of conv3"),
    ("[probe]\nlayers = [7]\n", "[probe].layers 7: the discriminator has conv layers 0..2"),
    ("[probe]\nlayers = [-1]\n", "[probe].layers: -1 is below 0"),
    ("[probe]\nholdout = -5\n", "[probe].holdout must be at least 0"),
    ("[probe]\nbn = 'moving'\n", "[probe].bn 'moving': expected one of recompute, checkpoint"),
    ("[probe]\nsolver = 'sgd'\n", "[probe].solver 'sgd'"),
    ("[probe]\nlabels_per_class = []\n", "[probe].labels_per_class is empty"),
    ("[probe]\ndraws = 0\n", "[probe].draws must be at least 1"),
    ("[probe]\nsettle = -1\n", "[probe].settle -1: expected a whole number of Newton steps"),
    ("[kmeans]\ncentroids = [0]\n", "[kmeans].centroids: 0 is below 1"),
    ("[kmeans]\nencoder = 'soft'\n", "[kmeans].encoder 'soft'"),
    ("[kmeans]\npatch = 0\n", "[kmeans].patch must be at least 1"),
    ("[metrics]\nsamples = 1\n", "[metrics].samples must be at least 2"),
    ("[vae]\nenabled = true\nmax_steps = -1\n", "[vae].max_steps must be at least 0, got -1"),
    ("[vae]\nbatch_size = 0\n", "[vae].batch_size must be at least 1, got 0"),
    ("[vae]\nlr = 0\n", "[vae].lr must be a positive number"),
    ("[vae]\nbeta1 = 1.0\n", "[vae].beta1 must be in [0, 1), got 1.0"),
    ("[vae]\npreset = 'huge'\n", "[vae].preset 'huge': expected one of"),
    ("[vae]\nmax_step = 3\n", "[vae].max_step: unknown key; expected one of"),
    ("[vae]\nenabled = true\nimage_size = 48\n", "[vae].image_size 48"),
    ("[vae]\nenabled = true\ndataset = 'mnist'\n", "[vae].dataset 'mnist': expected one of"),
    ("[vae]\nenabled = true\ndataset = 'cifar10'\n", "[vae].data_root is missing (needed for dataset cifar10)"),
    ("[vae]\nenabled = true\nlayers = ['conv9']\n", "[vae].layers conv9: the model has layers 0..3, named conv1, "
                                                     "conv2, conv3, mu"),
    ("[vae]\nenabled = true\nlayers = [7]\n", "[vae].layers 7: the model has layers 0..3"),
    ("[knn]\nvote = 'soft'\n", "[knn].vote 'soft': expected one of weighted, majority"),
    ("[knn]\nk_grid = [5, 0]\n", "[knn].k_grid: 0 is below 1"),
    ("[knn]\nT_grid = [0.1, -1.0]\n", "[knn].T_grid value -1.0: the temperature must be a positive number"),
    ("[knn]\nT_grid = [nan]\n", "[knn].T_grid value nan"),
    ("[knn]\nenabled = 'yes'\n", "[knn].enabled: expected true or false"),
])
def test_bad_values_stop_before_anything_is_written(tmp_path, capsys, text, message):
    config = tmp_path / "c.toml"
    config.write_text(text)
    out = tmp_path / "out"
    assert main(["pipeline", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("gan-probe pipeline: error: c.toml: "), err
    assert message in err, err
    assert not out.exists()


def test_a_config_object_is_validated_too(tmp_path):
    config = PipelineConfig()
    config.probe.C_grid = [0.1, 0.0]
    with pytest.raises(ConfigError, match=r"\[probe\].C_grid value 0.0"):
        run_pipeline(config, tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()


SMALL = {
    "name": "small", "seed": 0, "device": "cpu",
    "train": {"dataset": "digits", "preset": "small32", "ngf": 4, "ndf": 4, "nz": 8, "batch_size": 64,
              "max_steps": 2, "sample_every": 2, "checkpoint_every": 2},
    "probe": {"dataset": "digits", "protocols": ["full"], "C": "0.1", "layers": [2], "solver": "liblinear"},
    "kmeans": {"enabled": False},
    "baselines": {"random_d": False, "pixels": False},
    "metrics": {"fid": False, "inception_score": False},
    "report": {"formats": ["md"]},
}


def test_a_resumed_checkpoint_is_extracted_and_probed_again(tmp_path, capsys):
    config = config_from_dict(SMALL, "small")
    out = tmp_path / "out"
    first = run_pipeline(config, out, log=lambda m: None)
    assert not any(s.cached for s in first.stages)
    assert load_store(out / "features" / "dcgan").meta["checkpoint_step"] == 2
    # more training of the pipeline's own run, outside the pipeline
    assert main(["train", "--resume", "--max-steps", "4", "--out", str(out / "train"), "--no-progress",
                 "--device", "cpu"]) == 0
    assert load_checkpoint(out / "train" / "checkpoint.pt")["step"] == 4
    second = run_pipeline(config, out, log=lambda m: None)
    status = {s.name: s.cached for s in second.stages}
    assert status == {"train": True, "extract-dcgan": False, "svm-dcgan-full": False, "report": False}, status
    assert load_store(out / "features" / "dcgan").meta["checkpoint_step"] == 4
    result = json.loads((out / "results" / "svm-dcgan-full.json").read_text())
    assert result["features_meta"]["checkpoint_step"] == 4
    third = run_pipeline(config, out, log=lambda m: None)
    assert all(s.cached for s in third.stages)


def test_files_added_to_the_pipelines_report_directory_stop_it_before_any_stage(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "report").mkdir(parents=True)
    (out / "report" / "notes.txt").write_text("mine")
    assert main(["pipeline", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "the pipeline's report directory" in err and "notes.txt" not in err
    assert "move its files away" in err and "--force" not in err
    assert sorted(p.name for p in out.iterdir()) == ["report"]        # nothing ran, nothing was written
    # an earlier report with a file someone added to it: named, kept, and no --force suggested
    (out / "report" / "report.json").write_text(json.dumps({"format": "gan-probe-report", "files": []}))
    assert main(["pipeline", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "also holds notes.txt" in err and "move them out and rerun" in err and "--force" not in err
    assert (out / "report" / "notes.txt").read_text() == "mine"
