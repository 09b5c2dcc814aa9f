"""The L2-SVM probe with its training rows shared between two gloo processes gives the one-process result: the
same C, identical accuracies, objectives within 1e-6 relative (solver alone with each preconditioner, the
full-label protocol with its C grid and a resume, the few-label protocol). One torchrun launch runs every case."""
import json
import os
import textwrap

import numpy as np
import pytest
import torch
import torch.distributed as dist

from gan_probe.cli import main
from gan_probe.errors import FeatureStoreError
from gan_probe.features.shards import shard_name, write_manifest_split
from gan_probe.features.store import load_store, save_store
from gan_probe.probe import ProbeConfig, run_protocol
from gan_probe.probe.plan import SolverOptions
from gan_probe.probe.rows import RowReducer
from gan_probe.probe.svm import TrainingProblem

from rank_launch import launch_two_ranks, rank_outputs

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo")

GRID = (0.01, 0.1, 1.0)
SOLVES = {"subspace": SolverOptions(precondition="subspace"),
          "sketch": SolverOptions(precondition="sketch", sketch_rank=8),
          # CG on a packed (or plain) bfloat16 copy, on a copy of the active rows once they are few
          "bfloat16": SolverOptions(precondition="sketch", sketch_rank=8, hessian_precision="bfloat16")}
SOLVE_GRID = GRID[:2]
FULL = dict(C_grid=GRID, val_size=60, C_patience=2, device="cpu", method="primal", seed=3)
CLI = ["--C-grid", "0.01,0.1,1", "--val-size", "60", "--C-patience", "2", "--device", "cpu", "--method", "primal",
       "--seed", "3", "--no-progress"]
EXTRACT = ["extract", "--random-init", "small32", "--dataset", "digits", "--grid", "1", "--layers", "0", "--bn",
           "checkpoint", "--batch-size", "500", "--device", "cpu", "--no-progress"]   # 32 features
SHARDED_SVM = ["--C", "0.01", "--device", "cpu", "--method", "primal", "--no-progress"]
FEW = dict(labels_per_class=25, draws=2, C_grid=GRID, val_size=60, device="cpu", method="primal", seed=3)

WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np, torch
    from gan_probe.distributed import init_distributed, shutdown
    from gan_probe.probe import ProbeConfig, run_protocol
    from gan_probe.probe.rows import sharded_rows
    from gan_probe.probe.svm import TrainingProblem
    sys.path.insert(0, sys.argv[2])
    from test_probe_distributed import CLI, EXTRACT, SHARDED_SVM, FEW, FULL, GRID, SOLVE_GRID, SOLVES, data, jsonable

    tmp = Path(sys.argv[1])
    ctx = init_distributed("cpu")
    x, y, xt, yt = data()
    out = {}
    with sharded_rows(ctx):
        for name, options in SOLVES.items():
            problem = TrainingProblem(x, y, options=options, device="cpu", method="primal")
            out[name] = [[float(np.sum(r.objective)), r.W.tolist()] for r in map(problem.solve, SOLVE_GRID)]
        out["full"] = jsonable(run_protocol(x, y, xt, yt, ProbeConfig(**FULL)))
        out["few"] = jsonable(run_protocol(x, y, xt, yt, ProbeConfig(**FEW)))
        # interrupted at the grid's second C on both ranks, then run again: it resumes from the first C's fit
        solve = TrainingProblem.solve
        def second_c_interrupts(self, C, *args, **kwargs):
            if C == GRID[1]:
                raise KeyboardInterrupt
            return solve(self, C, *args, **kwargs)
        TrainingProblem.solve = second_c_interrupts
        try:
            run_protocol(x, y, xt, yt, ProbeConfig(**FULL), resume_dir=tmp / "fits")
        except KeyboardInterrupt:
            out["interrupted"] = sorted(p.name for p in (tmp / "fits").glob("C=*.pt"))
        TrainingProblem.solve = solve
        out["resumed"] = jsonable(run_protocol(x, y, xt, yt, ProbeConfig(**FULL), resume_dir=tmp / "fits"))
    # the command: the same, interrupted at the second C and resumed; then ranks that read different stores
    from gan_probe.cli import main
    svm = ["svm", "--features", str(tmp / "store"), *CLI, "--json", str(tmp / "cli.json")]
    TrainingProblem.solve = second_c_interrupts
    out["cli_interrupted"] = main(svm)
    out["cli_kept"] = sorted(p.name for p in (tmp / "cli.json.fits").glob("C=*.pt"))
    TrainingProblem.solve = solve
    out["cli"] = main(svm)
    out["cli_other"] = main(["svm", "--features", str(tmp / ("store" if ctx.rank == 0 else "other")), *CLI])
    out["cli_kernel"] = main(["svm", "--features", str(tmp / "store"), "--C", "0.1", "--device", "cpu", "--method",
                                "kernel", "--no-progress"])
    # a store extracted with --shards (each rank its own file), once interrupted on both ranks and resumed, and
    # the same store gathered through rank 0; then the sharded store probed by both ranks
    import gan_probe.features.extract as extraction
    pooled, calls = extraction.pooled_features, []
    def pooled_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == ctx.rank + 1:   # rank 0 in its first batch, rank 1 in its second
            raise KeyboardInterrupt
        return pooled(*args, **kwargs)
    extraction.pooled_features = pooled_then_interrupt
    out["shards_interrupted"] = main([*EXTRACT, "--out", str(tmp / "sharded"), "--shards"])
    extraction.pooled_features = pooled
    out["shards"] = main([*EXTRACT, "--out", str(tmp / "sharded"), "--shards"])
    out["gathered"] = main([*EXTRACT, "--out", str(tmp / "gathered")])
    out["sharded_svm"] = main(["svm", "--features", str(tmp / "sharded"), *SHARDED_SVM, "--json",
                               str(tmp / "sharded_svm.json")])
    (tmp / f"rank{ctx.rank}.json").write_text(json.dumps(out))
    shutdown()
""")


def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 1.2
    y = rng.integers(0, 3, 420)
    x = (centres[y] + rng.normal(size=(420, 16)) * np.linspace(0.2, 3, 16)).astype(np.float32)
    yt = rng.integers(0, 3, 150)
    xt = (centres[yt] + rng.normal(size=(150, 16)) * np.linspace(0.2, 3, 16)).astype(np.float32)
    return x, y, xt, yt


def jsonable(result):
    """The result's fields that ranks must agree on (timings differ)."""
    keep = ("accuracy", "accuracies", "C", "C_selection", "draw_details", "fits", "objective")

    def untimed(value):
        if isinstance(value, dict):
            return {k: untimed(v) for k, v in value.items() if k != "seconds"}
        return [untimed(v) for v in value] if isinstance(value, list) else value

    return untimed(json.loads(json.dumps({k: result[k] for k in keep if k in result}, default=float)))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe_ddp")
    x, y, xt, yt = data()
    save_store(tmp / "store", x, y, xt, yt, {"dataset": "toy"})
    save_store(tmp / "other", x[:-1], y[:-1], xt, yt, {"dataset": "toy"})
    done = launch_two_ranks(tmp, WORKER, os.path.dirname(__file__))
    return tmp, done, rank_outputs(tmp)


def _close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b))


@pytest.mark.parametrize("name", list(SOLVES))
def test_two_rank_solves_equal_one_process(two_ranks, name):
    ranks = two_ranks[2]
    x, y, _, _ = data()
    problem = TrainingProblem(x, y, options=SOLVES[name], device="cpu", method="primal")
    ones = [[float(np.sum(r.objective)), r.W] for r in map(problem.solve, SOLVE_GRID)]
    assert len(ranks[0][name]) == len(ones)
    for C, (objective, W), (objective1, W1) in zip(SOLVE_GRID, ones, ranks[0][name]):
        assert _close(objective, objective1), (C, objective, objective1)
        assert np.allclose(np.asarray(W1), W.numpy(), rtol=1e-4, atol=1e-6 * float(W.abs().max()))
    assert ranks[0][name] == ranks[1][name]   # every rank holds the same weights


def _same_result(one, two):
    assert two["C"] == one["C"]
    assert two["accuracies"] == one["accuracies"]
    assert two["C_selection"]["chosen"] == one["C_selection"]["chosen"]
    for key in ("val_accuracy", "test_accuracy", "mean_val_accuracy", "scores"):
        if key in one["C_selection"]:
            assert two["C_selection"][key] == one["C_selection"][key]
    assert _close(two["objective"], one["objective"])


@pytest.mark.parametrize("protocol", ["full", "few"])
def test_two_rank_protocols_equal_one_process(two_ranks, protocol):
    ranks = two_ranks[2]
    x, y, xt, yt = data()
    one = jsonable(run_protocol(x, y, xt, yt, ProbeConfig(**(FULL if protocol == "full" else FEW))))
    _same_result(one, ranks[0][protocol])
    assert ranks[0][protocol] == ranks[1][protocol]


def test_two_rank_grid_resumes_like_one_uninterrupted_process(two_ranks):
    ranks = two_ranks[2]
    assert ranks[0]["interrupted"] == [f"C={GRID[0]!r}.pt"]
    x, y, xt, yt = data()
    one = jsonable(run_protocol(x, y, xt, yt, ProbeConfig(**FULL)))
    resumed = ranks[0]["resumed"]
    assert resumed["fits"][0].get("resumed") is True
    _same_result(one, resumed)


def test_shares_are_contiguous_and_cover_every_row():
    shares = [RowReducer.share_of(11, r, 3) for r in range(3)]
    assert shares == [(0, 3), (3, 7), (7, 11)]
    assert RowReducer().gather_rows(torch.ones(2, 1), 2).tolist() == [[1.0], [1.0]]


def test_two_rank_svm_command_resumes_and_equals_one_process(two_ranks, tmp_path):
    tmp, done, ranks = two_ranks
    assert [r["cli_interrupted"] for r in ranks] == [130, 130]
    assert ranks[0]["cli_kept"] == [f"C={GRID[0]!r}.pt"]
    assert [r["cli"] for r in ranks] == [0, 0]
    two = json.loads((tmp / "cli.json").read_text())
    assert two["fits"][0]["resumed"] is True
    assert not (tmp / "cli.json.fits").exists()
    assert main(["svm", "--features", str(tmp / "store"), *CLI, "--json", str(tmp_path / "one.json")]) == 0
    _same_result(json.loads((tmp_path / "one.json").read_text()), two)
    written = sorted(p.name for p in tmp.iterdir() if p.suffix == ".json")
    assert written == ["cli.json", "rank0.json", "rank1.json", "sharded_svm.json"]


def test_ranks_that_read_different_stores_stop_with_one_line(two_ranks):
    tmp, done, ranks = two_ranks
    assert [r["cli_other"] for r in ranks] == [2, 2]
    lines = [line for line in done.stderr.splitlines() if "different feature store" in line]
    assert len(lines) == 1 and lines[0].startswith("gan-probe svm: error: rank 1 sees a different feature store")


def test_the_kernel_route_is_refused_under_torchrun_with_one_line(two_ranks):
    tmp, done, ranks = two_ranks
    assert [r["cli_kernel"] for r in ranks] == [2, 2]
    lines = [line for line in done.stderr.splitlines() if "--method kernel" in line]
    assert len(lines) == 1 and lines[0].startswith("gan-probe svm: error: --method kernel needs every training row")


def test_sharded_extraction_resumes_and_holds_the_gathered_store(two_ranks):
    tmp, done, ranks = two_ranks
    assert [r["shards_interrupted"] for r in ranks] == [130, 130]
    assert [r["shards"] for r in ranks] == [0, 0] and [r["gathered"] for r in ranks] == [0, 0]
    sharded, gathered = load_store(tmp / "sharded"), load_store(tmp / "gathered")
    assert sorted(p.name for p in (tmp / "sharded").glob("*_features*.npy")) == [
        "test_features-00000-of-00002.npy", "test_features-00001-of-00002.npy",
        "train_features-00000-of-00002.npy", "train_features-00001-of-00002.npy"]
    assert [len(p) for p in sharded.train_features.parts] == [500, 847]   # whole batches of 500 rows
    assert sharded.meta["resumed"]["rows"] == {"train": 500}              # rank 1 kept its first batch
    for split in ("train", "test"):
        a, b = getattr(sharded, f"{split}_features"), getattr(gathered, f"{split}_features")
        assert np.array_equal(np.asarray(a), np.asarray(b))
        rows = [5, len(b) - 3, 3]      # (across the shard boundary, and backwards)
        assert np.array_equal(a[rows], b[rows]) and np.array_equal(a[490:510], b[490:510])
        assert np.array_equal(getattr(sharded, f"{split}_labels"), getattr(gathered, f"{split}_labels"))


def test_sharded_store_probed_in_one_process_and_by_two_ranks_has_the_plain_accuracy(two_ranks, tmp_path):
    tmp, done, ranks = two_ranks
    results = []
    for store in ("sharded", "gathered"):
        assert main(["svm", "--features", str(tmp / store), *SHARDED_SVM, "--json", str(tmp_path / store)]) == 0
        results.append(json.loads((tmp_path / store).read_text()))
    two = json.loads((tmp / "sharded_svm.json").read_text())
    assert results[0]["accuracy"] == results[1]["accuracy"] == two["accuracy"]
    assert results[0]["objective"] == results[1]["objective"]
    assert _close(two["objective"], results[1]["objective"])
    knn = []
    for store in ("sharded", "gathered"):
        assert main(["knn", "--features", str(tmp / store), "--device", "cpu", "--json", str(tmp_path / "k")]) == 0
        knn.append(json.loads((tmp_path / "k").read_text())["accuracy"])
    assert knn[0] == knn[1]


def test_a_missing_shard_is_one_line(tmp_path):
    x, y, xt, yt = data()
    root = save_store(tmp_path / "s", x, y, xt, yt, {"dataset": "toy"})
    (root / "train_features.npy").unlink()
    for r, (start, end) in enumerate([(0, 200), (200, 420)]):
        np.save(root / shard_name("train", r, 2), x[start:end])
    write_manifest_split(root, "train", [shard_name("train", r, 2) for r in range(2)], [200, 220], x.shape[1])
    assert np.array_equal(np.asarray(load_store(root).train_features), x)
    (root / shard_name("train", 1, 2)).unlink()
    with pytest.raises(FeatureStoreError, match="train_features-00001-of-00002.npy: missing; .*shards.json lists"):
        load_store(root)
