"""The online linear probe of `gan-probe train --probe-every N` (gan_probe.training.probe)."""
import json

import numpy as np
import pytest
import torch

from gan_probe.models.checkpoint import load_checkpoint
from gan_probe.cli import main
from gan_probe.models import Discriminator, preset_config
from gan_probe.report import build_figures, load_results
from gan_probe.report import figures as figs
from gan_probe.report.series import probe_curve
from gan_probe.training import TrainConfig, read_log, train
from gan_probe.training.probe import best_probe_so_far
from gan_probe.training.probe import OnlineProbe, ProbeSettings
from report_synthetic import run_dir

# a high learning rate, so that D's features (and the probe's accuracy) move within a few steps
TINY = dict(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16}, batch_size=32, lr=5e-3,
            log_every=2, sample_every=100, checkpoint_every=100, device="cpu")  # exact resume: a CPU guarantee
PROBE = dict(probe_every=3, probe_dataset="digits", probe_images=200)


def _probes(run):
    return [(int(r["step"]), r["probe_acc"]) for r in read_log(run) if "probe_acc" in r]


def _best(run):
    """(step, accuracy) of the highest logged probe accuracy, the earliest of equals."""
    rows = _probes(run)
    top = max(acc for _, acc in rows)
    return next((s, acc) for s, acc in rows if acc == top)


def test_probe_logs_real_accuracies_at_its_steps_and_keeps_the_best_checkpoint(tmp_path):
    result = train(TrainConfig(**TINY, **PROBE, max_steps=16), tmp_path / "run")
    out = result.out_dir
    log = read_log(out)
    rows = _probes(out)
    # the untrained D (step 0), the multiples of --probe-every and the last step
    assert [s for s, _ in rows] == [0, 3, 6, 9, 12, 15, 16]
    assert [int(r["step"]) for r in log] == [0, 2, 3, 4, 6, 8, 9, 10, 12, 14, 15, 16]  # probe steps are logged too
    assert "loss_d" not in log[0] and "loss_d" in log[1]  # step 0 has no losses
    accs = [a for _, a in rows]
    assert all(0.0 <= a <= 1.0 for a in accs) and len(set(accs)) > 1
    assert all(abs(a * 50 - round(a * 50)) < 1e-9 for a in accs)  # a count of the 50 validation images
    assert all(r["probe_seconds"] > 0 for r in log if "probe_acc" in r)
    best_step, best_acc = _best(out)
    state = load_checkpoint(out / "best_probe.pt")
    assert state["step"] == best_step and state["probe"]["probe_acc"] == best_acc
    assert {"generator", "discriminator", "optimizer_g", "optimizer_d"} <= set(state)  # a full checkpoint
    saved = json.loads((out / "best_probe.json").read_text())
    assert saved["step"] == best_step and saved["probe_acc"] == best_acc and saved["checkpoint"] == "best_probe.pt"
    assert saved["probe"]["dataset"] == "digits" and (saved["probe"]["n_fit"], saved["probe"]["n_val"]) == (150, 50)
    assert saved["probe"] == json.loads((out / "config.json").read_text())["probe"]


def test_probe_does_not_change_the_training_trajectory(tmp_path):
    plain = train(TrainConfig(**TINY, max_steps=10), tmp_path / "plain")
    probed = train(TrainConfig(**TINY, **PROBE, max_steps=10), tmp_path / "probed")
    a = {r["step"]: (r["loss_d"], r["loss_g"], r["d_real"]) for r in read_log(plain.out_dir)}
    b = {r["step"]: (r["loss_d"], r["loss_g"], r["d_real"]) for r in read_log(probed.out_dir) if r["step"] > 0}
    assert a and all(b[s] == v for s, v in a.items())
    wa, wb = (load_checkpoint(r.out_dir / "checkpoint.pt")["discriminator"] for r in (plain, probed))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # running statistics included


def test_resumed_run_logs_the_same_probe_column_and_keeps_the_same_best(tmp_path):
    straight = train(TrainConfig(**TINY, **PROBE, max_steps=15), tmp_path / "straight")
    expected, best = _probes(straight.out_dir), _best(straight.out_dir)
    train(TrainConfig(**TINY, **PROBE, max_steps=6), tmp_path / "cut")
    cut = train(TrainConfig(**TINY, max_steps=15), tmp_path / "cut", resume=True)  # the probe options are kept
    # stopped by --max-minutes at step 2, between probes
    train(TrainConfig(**TINY, **PROBE, max_steps=15, max_minutes=1e-9), tmp_path / "timed")
    timed = train(TrainConfig(**TINY, max_steps=15), tmp_path / "timed", resume=True)
    assert (cut.resumed_from, timed.resumed_from) == (6, 2)
    for run in (cut, timed):
        assert _probes(run.out_dir) == expected
        assert load_checkpoint(run.out_dir / "best_probe.pt")["step"] == best[0]
        assert json.loads((run.out_dir / "best_probe.json").read_text())["step"] == best[0]


def test_resume_behind_the_best_probe_file_repeats_the_steps_and_rewrites_it(tmp_path):
    straight = train(TrainConfig(**TINY, **PROBE, max_steps=12), tmp_path / "straight")
    cut = tmp_path / "cut"
    train(TrainConfig(**TINY, **PROBE, max_steps=9), cut)
    probe_info = json.loads((cut / "config.json").read_text())["probe"]
    # best_probe.json ahead of the checkpoint resumed from: the best so far comes from the log up to it
    ahead = {"step": 9, "probe_acc": 0.99, "probe": probe_info}
    (tmp_path / "ahead").mkdir()
    (tmp_path / "ahead" / "log.csv").write_bytes((cut / "log.csv").read_bytes())
    (tmp_path / "ahead" / "best_probe.json").write_text(json.dumps(ahead))
    logged = [(s, a) for s, a in _probes(cut) if s <= 6]
    top = max(a for _, a in logged)
    assert best_probe_so_far(tmp_path / "ahead", 6, probe_info) == {
        "step": next(s for s, a in logged if a == top), "probe_acc": top}
    assert best_probe_so_far(tmp_path / "ahead", 6, {**probe_info, "C": 1.0}) is None  # another probe: afresh
    # resume from checkpoint.prev.pt (as if checkpoint.pt were lost): steps are repeated, the result is the same
    (cut / "checkpoint.pt").unlink()
    resumed = train(TrainConfig(**TINY, max_steps=12), cut, resume=True)
    assert resumed.resumed_from < 9
    assert _probes(cut) == _probes(straight.out_dir)
    assert load_checkpoint(cut / "best_probe.pt")["step"] == _best(straight.out_dir)[0]


def test_probe_leaves_the_discriminator_alone_and_is_deterministic():
    cfg = preset_config("small32", ndf=8)
    torch.manual_seed(0)
    disc = Discriminator(cfg).train()
    before = {k: v.clone() for k, v in disc.state_dict().items()}
    probe = OnlineProbe(ProbeSettings("digits", images=120, seed=2), cfg)
    rng = torch.get_rng_state()
    first, second = probe(disc), probe(disc)
    assert torch.equal(torch.get_rng_state(), rng)  # draws nothing from the global stream
    assert first.accuracy == second.accuracy and 0.0 <= first.accuracy <= 1.0
    assert disc.training and all(torch.equal(before[k], v) for k, v in disc.state_dict().items())
    assert len(probe.fit_rows) == 90 and len(probe.val_rows) == 30
    assert np.bincount(probe.labels[probe.val_rows], minlength=10).min() >= 2  # stratified
    assert not set(probe.fit_rows) & set(probe.val_rows)
    layers = OnlineProbe(ProbeSettings("digits", images=120, layers=(0,), seed=2), cfg)
    assert layers.features(disc.eval()).shape == (120, 8 * 16)


def test_cli_probe_flags_and_changed_probe_settings_on_resume(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--dataset", "digits", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "32",
            "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(args + ["--max-steps", "4", "--probe-every", "2", "--probe-dataset", "digits", "--probe-images",
                        "100", "--probe-layers", "0,2", "--probe-C", "0.01", "--probe-seed", "1"]) == 0
    saved = json.loads((out / "best_probe.json").read_text())["probe"]
    assert (saved["layers"], saved["C"], saved["seed"], saved["n_images"]) == ([0, 2], 0.01, 1, 100)
    # probe options may change on resume; the new probe starts its own best
    assert main(args + ["--max-steps", "6", "--resume", "--probe-images", "120"]) == 0
    assert [s for s, _ in _probes(out)] == [0, 2, 4, 6]
    saved = json.loads((out / "best_probe.json").read_text())
    assert saved["step"] == 6 and saved["probe"]["n_images"] == 120 and saved["probe"]["layers"] == [0, 2]


def test_training_curves_figure_has_the_probe_panel_and_report_draws_the_probe_curve(tmp_path, monkeypatch):
    run = load_results([run_dir(tmp_path / "runs" / "r1", probe_every=4)]).runs[0]
    curve = probe_curve(run)
    assert curve.steps == [4, 8, 12, 16, 20] and (curve.best_step, curve.best_accuracy) == (8, pytest.approx(0.48))
    drawn = []
    save = figs.save_figure
    monkeypatch.setattr(figs, "save_figure", lambda fig, path: drawn.append(fig) or save(fig, path))
    assert figs.loss_curves_figure([run], tmp_path / "loss.png").is_file()
    titles = [ax.get_title() for ax in drawn[-1].axes]
    assert titles[-1] == "Online linear probe of D" and len(titles) == 3
    plain = load_results([run_dir(tmp_path / "runs" / "r0")]).runs[0]
    figs.loss_curves_figure([plain, run], tmp_path / "two.png")  # several runs, one with a probe
    assert len(drawn[-1].axes) == 3
    refs, _ = build_figures(load_results([tmp_path / "runs" / "r1"]), tmp_path / "figures", interpolation=False)
    assert [r.path for r in refs] == ["figures/training_curves.png", "figures/probe_curve_r1.png",
                                      "figures/samples_r1.png"]
    assert "(8, 48.0%)" in refs[1].caption and "C = 0.0003" in refs[1].caption
    assert (tmp_path / "figures" / "probe_curve_r1.png").read_bytes()[:4] == b"\x89PNG"
