"""Two gloo processes under torchrun give the single-process results: training (with --sync-bn, and resumed),
feature extraction; only rank 0 writes. One torchrun launch runs every phase (process startup dominates)."""
import json
import textwrap

import numpy as np
import pytest
import torch
import torch.distributed as dist

from gan_probe.models.checkpoint import load_checkpoint
from gan_probe.distributed import gather_batches, init_distributed, shard_batches
from gan_probe.cli import main
from gan_probe.features import extract_features, load_store
from gan_probe.metrics.weights import random_reference_state_dict
from gan_probe.training.syncbn import GlobalBatchNorm2d, convert_sync_batchnorm
from gan_probe.training import read_log

from rank_launch import launch_two_ranks, run_one_process

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo")

TRAIN = ["--device", "cpu", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "32", "--log-every", "1",
         "--sample-every", "2", "--checkpoint-every", "1", "--no-progress", "--seed", "7"]

WORKER = textwrap.dedent("""
    import os, shutil, sys
    from pathlib import Path
    from gan_probe.cli import main
    from gan_probe.distributed import init_distributed, shutdown

    init_distributed("cpu")  # from torchrun's environment; every command below runs in this process group
    tmp, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    train = ["train", *sys.argv[2:]]
    codes = {}
    codes["odd"] = main(train + ["--batch-size", "31", "--out", str(tmp / "odd"), "--max-steps", "1"])
    codes["sync3"] = main(train + ["--sync-bn", "--max-steps", "3", "--out", str(tmp / "sync")])
    if rank == 0:
        shutil.copy(tmp / "sync" / "checkpoint.pt", tmp / "sync_step3.pt")
    codes["sync5"] = main(train + ["--sync-bn", "--max-steps", "5", "--resume", "--out", str(tmp / "sync")])
    codes["local3"] = main(train + ["--max-steps", "3", "--out", str(tmp / "local")])
    codes["probe"] = main(train + ["--sync-bn", "--max-steps", "4", "--probe-every", "2", "--probe-dataset", "digits",
                                   "--probe-images", "100", "--out", str(tmp / "probe")])  # rank 0 probes
    # SIGTERM reaches rank 1 alone during its third step: both ranks stop at the same step with a checkpoint
    import signal
    import gan_probe.training.gan as training
    draw, drawn = training.draw_step_noise, []

    def draw_and_signal(*args, **kwargs):
        drawn.append(1)
        if rank == 1 and len(drawn) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return draw(*args, **kwargs)

    training.draw_step_noise = draw_and_signal
    codes["stop"] = main(train + ["--sync-bn", "--max-steps", "6", "--out", str(tmp / "stop")])
    training.draw_step_noise = draw
    codes["extract"] = main(["extract", "--checkpoint", str(tmp / "sync_step3.pt"), "--out", str(tmp / "feats"),
                             "--batch-size", "200", "--device", "cpu", "--no-progress"])
    # the same extraction interrupted on both ranks in the third round (the features of rounds 1-2 are on disk),
    # then rerun: it resumes after them
    import gan_probe.features.extract as extraction
    pooled, calls = extraction.pooled_features, []

    def pooled_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return pooled(*args, **kwargs)

    extract = ["extract", "--checkpoint", str(tmp / "sync_step3.pt"), "--out", str(tmp / "feats_cut"),
               "--batch-size", "200", "--device", "cpu", "--no-progress"]
    extraction.pooled_features = pooled_then_interrupt
    codes["extract_cut"] = main(extract)
    extraction.pooled_features = pooled
    codes["extract_resumed"] = main(extract)
    metrics = ["--device", "cpu", "--batch-size", "2", "--no-progress"]
    codes["is"] = main(["inception-score", "--images", str(tmp / "imgs.npz"), "--weights", str(tmp / "w.pth"),
                        "--splits", "1", "--json", str(tmp / "is2.json"), *metrics])
    codes["fid"] = main(["fid", str(tmp / "imgs.npz"), str(tmp / "sync_step3.pt"), "--samples", "5",
                         "--fid-weights", str(tmp / "w.pth"), "--json", str(tmp / "fid2.json"), *metrics])
    # the VAE family in the same loop, and its encoder's features
    codes["vae"] = main(train + ["--model", "vae", "--sync-bn", "--max-steps", "3", "--out", str(tmp / "vae")])
    codes["vae_extract"] = main(["extract", "--checkpoint", str(tmp / "vae" / "checkpoint.pt"), "--out",
                                 str(tmp / "vae_feats"), "--batch-size", "200", "--device", "cpu", "--no-progress"])
    print(f"rank {rank} codes {sorted(codes.items())}", flush=True)
    shutdown()
    # rank 1, which took the SIGTERM above, sometimes aborted in the interpreter's teardown after everything had
    # run and been checked ("terminate called without an active exception"): leave without that teardown
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
""")


def _weights(path):
    state = load_checkpoint(path)
    return {**{f"g.{k}": v for k, v in state["generator"].items()},
            **{f"d.{k}": v for k, v in state["discriminator"].items()}}


def _max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    torch.save(random_reference_state_dict(0, logit_scale=30.0), tmp / "w.pth")  # Inception, reference layout
    np.savez(tmp / "imgs.npz", images=np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    done = launch_two_ranks(tmp, WORKER, *TRAIN, env={"GAN_PROBE_CACHE": str(tmp / "cache")})
    return tmp, done


def test_every_phase_ran_on_both_ranks(two_ranks):
    tmp, done = two_ranks
    codes = ("[('extract', 0), ('extract_cut', 130), ('extract_resumed', 0), ('fid', 0), ('is', 0), ('local3', 0), "
             "('odd', 2), ('probe', 0), ('stop', 130), ('sync3', 0), ('sync5', 0), ('vae', 0), ('vae_extract', 0)]")
    assert f"rank 0 codes {codes}" in done.stdout and f"rank 1 codes {codes}" in done.stdout


def test_global_batch_must_divide_by_world_size(two_ranks):
    tmp, done = two_ranks
    errors = [line for line in done.stderr.splitlines() if line.startswith("gan-probe train: error:")]
    assert errors == ["gan-probe train: error: --batch-size 31: the global batch must be divisible by the world "
                      "size 2 (each rank takes batch-size / world-size images)"]  # printed by rank 0 only
    assert not (tmp / "odd").exists()


def test_sync_bn_two_ranks_equal_one_process(two_ranks, tmp_path):
    tmp, done = two_ranks
    run_one_process("train", *TRAIN, "--max-steps", "3", "--out", tmp_path / "one")
    expected = _weights(tmp_path / "one" / "checkpoint.pt")
    got = _weights(tmp / "sync_step3.pt")
    assert _max_diff(expected, got) < 1e-5
    np.testing.assert_allclose([r["loss_d"] for r in read_log(tmp / "sync")][:3],
                               [r["loss_d"] for r in read_log(tmp_path / "one")], rtol=1e-5)
    # without --sync-bn each rank normalises with its half-batch statistics: a different trajectory
    assert _max_diff(expected, _weights(tmp / "local" / "checkpoint.pt")) > 1e-4


def test_resume_under_two_ranks_equals_uninterrupted_single_process(two_ranks, tmp_path):
    tmp, done = two_ranks
    run_one_process("train", *TRAIN, "--max-steps", "5", "--out", tmp_path / "straight")
    assert _max_diff(_weights(tmp_path / "straight" / "checkpoint.pt"), _weights(tmp / "sync" / "checkpoint.pt")) < 1e-5
    state = load_checkpoint(tmp / "sync" / "checkpoint.pt")
    assert state["step"] == 5 and state["distributed"]["world_size"] == 2
    assert state["distributed"]["per_rank_batch"] == 16 and state["distributed"]["global_batch"] == 32


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint(two_ranks, tmp_path):
    tmp, done = two_ranks
    assert load_checkpoint(tmp / "stop" / "checkpoint.pt")["step"] == 3
    assert [r["step"] for r in read_log(tmp / "stop")] == [1, 2, 3]
    stopped = [line for line in done.stderr.splitlines() if line.startswith("gan-probe train: interrupted")]
    assert len(stopped) == 2 and all("stopped at step 3 of 6 on request" in line for line in stopped)
    resumed = run_one_process("train", *TRAIN, "--max-steps", "6", "--resume", "--out", tmp / "stop")
    run_one_process("train", *TRAIN, "--max-steps", "6", "--out", tmp_path / "straight")
    assert "trained to step 6/6 (resumed at step 3)" in resumed.stdout
    assert _max_diff(_weights(tmp_path / "straight" / "checkpoint.pt"), _weights(tmp / "stop" / "checkpoint.pt")) < 1e-5


def test_two_rank_online_probe_equals_one_process(two_ranks, tmp_path):
    tmp, done = two_ranks
    run_one_process("train", *TRAIN, "--max-steps", "4", "--probe-every", "2", "--probe-dataset", "digits",
                    "--probe-images", "100", "--out", tmp_path / "one")
    got = [(r["step"], r["probe_acc"]) for r in read_log(tmp / "probe") if "probe_acc" in r]
    expected = [(r["step"], r["probe_acc"]) for r in read_log(tmp_path / "one") if "probe_acc" in r]
    assert [s for s, _ in got] == [s for s, _ in expected] == [0, 2, 4] and got[0] == expected[0]
    # the weights agree to 1e-5: the same accuracy, or one of the 25 validation images either way
    assert all(abs(a - b) <= 1 / 25 + 1e-9 for (_, a), (_, b) in zip(got, expected))
    best = json.loads((tmp / "probe" / "best_probe.json").read_text())
    assert load_checkpoint(tmp / "probe" / "best_probe.pt")["step"] == best["step"]
    assert best["probe_acc"] == max(a for _, a in got)


def test_only_rank_zero_writes(two_ranks):
    tmp, done = two_ranks
    run = tmp / "sync"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt", "config.json", "log.csv",
                                                     "samples"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == [f"step_{s:07d}.png" for s in (2, 3, 4, 5)]
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4, 5]  # one row per step, not one per rank
    assert done.stdout.count("trained to step 5/5 (resumed at step 3) on 2 ranks") == 1
    assert done.stdout.count("features: ") == 3  # three finished extractions (feats, feats_cut resumed, vae_feats)
    assert done.stdout.count("Inception Score: ") == 1 and done.stdout.count("FID: ") == 1
    assert not list(tmp.rglob("*.tmp"))


def test_two_rank_extract_equals_one_process(two_ranks, tmp_path):
    tmp, done = two_ranks
    one = load_store(extract_features(tmp / "sync_step3.pt", "digits", out=tmp_path / "one", batch_size=200,
                                      device="cpu"))
    two = load_store(tmp / "feats")
    assert two.meta["ranks"] == 2 and two.meta["key"] == one.meta["key"]
    assert two.meta["batchnorm_batches"] == one.meta["batchnorm_batches"] == 7
    np.testing.assert_array_equal(two.train_labels, one.train_labels)
    np.testing.assert_array_equal(two.test_labels, one.test_labels)
    # the re-estimated batch-norm statistics are a weighted all-reduce: equal up to float rounding
    np.testing.assert_allclose(two.train_features, one.train_features, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(two.test_features, one.test_features, rtol=1e-4, atol=1e-5)


def test_two_rank_vae_training_and_extraction_equal_one_process(two_ranks, tmp_path):
    tmp, done = two_ranks
    run_one_process("train", *TRAIN, "--model", "vae", "--max-steps", "3", "--out", tmp_path / "one")
    a, b = (load_checkpoint(p / "checkpoint.pt")["vae"] for p in (tmp_path / "one", tmp / "vae"))
    assert _max_diff(a, b) < 1e-5
    np.testing.assert_allclose([r["loss"] for r in read_log(tmp / "vae")],
                               [r["loss"] for r in read_log(tmp_path / "one")], rtol=1e-5)
    single = load_store(extract_features(tmp / "vae" / "checkpoint.pt", "digits", out=tmp_path / "feats",
                                         batch_size=200, device="cpu"))
    two = load_store(tmp / "vae_feats")
    assert two.meta["ranks"] == 2 and two.meta["key"] == single.meta["key"] and two.meta["source"] == "vae"
    np.testing.assert_allclose(two.test_features, single.test_features, rtol=1e-4, atol=1e-5)


def test_two_rank_extract_interrupted_inside_a_split_resumes_after_its_whole_rounds(two_ranks):
    tmp, done = two_ranks
    whole, resumed = load_store(tmp / "feats"), load_store(tmp / "feats_cut")
    assert resumed.meta["resumed"]["rows"] == {"train": 800} and resumed.meta["resumed"]["batchnorm"]
    for part in ("train_features", "train_labels", "test_features", "test_labels"):
        assert np.array_equal(getattr(whole, part), getattr(resumed, part)), part
    assert not (tmp / "feats_cut" / ".partial").exists()


def test_two_rank_inception_score_and_fid_equal_one_process(two_ranks, tmp_path):
    """5 images in batches of 2: rank 0 scores batches 0 and 2, rank 1 batch 1 (a last, incomplete round)."""
    tmp, done = two_ranks
    metrics = ["--device", "cpu", "--batch-size", "2", "--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank (OMP_NUM_THREADS=1): the same float32 kernels, the same roundings
    try:
        _one_process_metrics(tmp, tmp_path, metrics)
    finally:
        torch.set_num_threads(threads)
    one_is, two_is = (json.loads(p.read_text()) for p in (tmp_path / "is1.json", tmp / "is2.json"))
    assert two_is["ranks"] == 2 and one_is["ranks"] == 1 and two_is["n"] == one_is["n"] == 5
    assert two_is["inception_score_mean"] == one_is["inception_score_mean"] > 1
    one_fid, two_fid = (json.loads(p.read_text()) for p in (tmp_path / "fid1.json", tmp / "fid2.json"))
    assert two_fid["n_a"] == one_fid["n_a"] == 5 and two_fid["n_b"] == one_fid["n_b"] == 5
    assert two_fid["fid"] == pytest.approx(one_fid["fid"], rel=1e-12) and one_fid["fid"] > 0


def _one_process_metrics(tmp, tmp_path, metrics):
    assert main(["inception-score", "--images", str(tmp / "imgs.npz"), "--weights", str(tmp / "w.pth"),
                 "--splits", "1", "--json", str(tmp_path / "is1.json"), *metrics]) == 0
    assert main(["fid", str(tmp / "imgs.npz"), str(tmp / "sync_step3.pt"), "--samples", "5", "--fid-weights",
                 str(tmp / "w.pth"), "--json", str(tmp_path / "fid1.json"), *metrics]) == 0


def test_round_robin_batches_cover_every_row_once():
    n, size, world = 1347, 200, 3
    seen = sorted(s for r in range(world) for s in shard_batches(n, size, r, world))
    assert seen == list(range(0, n, size))
    assert shard_batches(10, 3, 0, 2) == [0, 6] and shard_batches(10, 3, 1, 2) == [3, 9]


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.enabled, ctx.is_main) == (0, 1, False, True)
    block = torch.arange(12.0).view(4, 3)
    (only,) = gather_batches(block, 3, 4, ctx)
    assert torch.equal(only, block[:3])


def test_global_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(5, momentum=None)
    net = convert_sync_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), bn), torch.device("cpu"))
    assert isinstance(net[1], GlobalBatchNorm2d) and net[1].weight is bn.weight
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.BatchNorm2d(5, momentum=None))
    ref.load_state_dict(net.state_dict())
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(net(x), ref(x))
    torch.testing.assert_close(net[1].running_var, ref[1].running_var)
