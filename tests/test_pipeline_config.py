import pytest

from gan_probe.cli import main
from gan_probe.errors import ConfigError
from gan_probe.pipeline import default_config, load_config
from gan_probe.pipeline.stages import StageRunner


def _write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_default_config_is_digits():
    config = default_config()
    assert config.train.dataset == "digits" and config.probe.dataset == "digits"
    assert config.baselines.random_d and config.baselines.pixels and config.kmeans.enabled
    assert not config.vae.enabled and not config.knn.enabled  # digits-representations adds them


@pytest.mark.parametrize("text,message", [
    ("[train]\nmax_step = 3\n", "c.toml: [train].max_step: unknown key; expected one of"),
    ("[train]\nmax_steps = 'many'\n", "c.toml: [train].max_steps: expected an integer, got 'many'"),
    ("colour = 1\n", "c.toml: colour: unknown key"),
    ("[kmeans]\nenabled = 1\n", "[kmeans].enabled: expected true or false"),
    ("[probe]\nlabels_per_class = 400\n", "[probe].labels_per_class: expected a list"),
    ("[probe]\ndataset = 'cifar10'\n", "[probe].data_root is missing (needed for dataset cifar10)"),
    ("[probe]\ndataset = 'cifar10'\ndata_root = '/no/such/dir'\n", "/no/such/dir: no such file or directory"),
    ("[probe]\ndataset = 'mnist'\n", "[probe].dataset 'mnist': expected one of"),
    ("[probe]\nC = '-1'\n", "[probe].C -1: C must be a positive number"),
    ("[probe]\nC = 'abc'\n", "[probe].C 'abc': expected a positive number or 'auto'"),
    ("[probe]\nprotocols = ['all']\n", "'all' is not one of full, few-labels, svhn"),
    ("[probe]\nC_patience = -1\n", "[probe].C_patience must be 0 (fit the whole grid) or positive"),
    ("[train]\ncheckpoint = 'missing.pt'\n", "[train].checkpoint missing.pt: file not found"),
    ("train = 3\n", "train: expected a [train] table"),
    ("[train\n", "not valid TOML"),
])
def test_validation_errors_are_one_line_and_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_config_file(tmp_path, capsys):
    assert main(["pipeline", "--config", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("none.toml: config file not found") and len(err.splitlines()) == 1


@pytest.mark.parametrize("name", ["digits-default", "digits-representations", "cifar10-paper", "svhn-paper"])
def test_shipped_configs_parse(name, capsys, tmp_path, monkeypatch):
    assert main(["pipeline", "--show-config", name]) == 0
    text = capsys.readouterr().out
    # point the data roots at an existing directory so validation passes
    text = text.replace('"/data/imagenet32"', f'"{tmp_path}"').replace('"/data/cifar10"', f'"{tmp_path}"')
    text = text.replace('"/data/svhn"', f'"{tmp_path}"')
    config = load_config(_write(tmp_path, text))
    assert config.name == name


def test_stage_cache_skips_unchanged_and_reruns_changed(tmp_path):
    calls = []

    def work(tag):
        def fn():
            calls.append(tag)
            out = tmp_path / f"{tag}.txt"
            out.write_text(tag)
            return {"out_path": str(out)}
        return fn

    runner = StageRunner(tmp_path, log=lambda m: None)
    a = runner.run("a", {"x": 1}, work("a1"))
    assert not a.cached and calls == ["a1"]
    again = StageRunner(tmp_path, log=lambda m: None).run("a", {"x": 1}, work("a2"))
    assert again.cached and calls == ["a1"] and again.key == a.key
    changed = StageRunner(tmp_path, log=lambda m: None).run("a", {"x": 2}, work("a3"))
    assert not changed.cached and calls == ["a1", "a3"]
    (tmp_path / "a3.txt").unlink()  # an output went missing: recompute
    StageRunner(tmp_path, log=lambda m: None).run("a", {"x": 2}, work("a4"))
    assert calls == ["a1", "a3", "a4"]


def test_skipped_stage_records_reason(tmp_path):
    runner = StageRunner(tmp_path, log=lambda m: None)
    res = runner.run("fid", {}, lambda: {"_skipped": "no weights"})
    assert res.skipped == "no weights"
    assert StageRunner(tmp_path, log=lambda m: None).run("fid", {}, lambda: 1 / 0).skipped == "no weights"


def test_C_patience_enters_the_svm_stage_key_only_when_set():
    import dataclasses

    from gan_probe.pipeline.config import ProbeSection
    from gan_probe.pipeline.run import _probe_inputs

    unset = _probe_inputs(ProbeSection())
    assert "C_patience" not in unset  # stage keys of configurations written before the option are unchanged
    assert unset == {k: v for k, v in dataclasses.asdict(ProbeSection()).items() if k != "C_patience"}
    assert _probe_inputs(ProbeSection(C_patience=2))["C_patience"] == 2


@pytest.mark.parametrize("protocol,expected", [("full", 2), ("few-labels", None), ("svhn", None)])
def test_svm_stage_passes_C_patience_to_the_full_label_protocol_only(protocol, expected):
    from gan_probe.pipeline.config import PipelineConfig, ProbeSection, probe_run_config

    config = PipelineConfig(probe=ProbeSection(C_patience=2))
    assert probe_run_config(config, protocol, 5 if protocol == "few-labels" else None).C_patience == expected


def test_svm_stage_runs_the_probe_config_it_is_given_and_writes_its_result(tmp_path, monkeypatch):
    import gan_probe.probe as probe_api
    from gan_probe.pipeline.config import PipelineConfig, probe_run_config
    from gan_probe.pipeline.run import svm_stage

    seen = {}
    monkeypatch.setattr(probe_api, "run_probe", lambda root, config, path, **kwargs: seen.update(c=config, p=path))
    config = probe_run_config(PipelineConfig(), "few-labels", 7)
    assert svm_stage("feats", config, tmp_path / "r.json", False) == {"result_path": str(tmp_path / "r.json")}
    assert seen == {"c": config, "p": tmp_path / "r.json"}


def test_the_cli_and_the_pipeline_build_the_same_probe_config():
    from gan_probe.cli import build_parser
    from gan_probe.cli.svm import probe_config_from_args
    from gan_probe.pipeline.config import PipelineConfig, ProbeSection, probe_run_config

    args = build_parser().parse_args(["svm", "--features", "f", "--labels-per-class", "7", "--draws", "3",
                                      "--C-grid", "0.01,1", "--seed", "4", "--device", "cpu"])
    config = PipelineConfig(seed=4, device="cpu", probe=ProbeSection(draws=3, C_grid=[0.01, 1.0]))
    assert probe_config_from_args(args) == probe_run_config(config, "few-labels", 7)
    args = build_parser().parse_args(["svm", "--features", "f", "--device", "cpu"])
    assert probe_config_from_args(args) == probe_run_config(PipelineConfig(device="cpu"), "full")
