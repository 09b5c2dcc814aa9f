"""The kNN probe with its bank rows shared between two gloo processes gives the one-process result: the same
neighbours (equal similarities in bank order), predictions for every k and T, the chosen k and T and every accuracy,
for the all-label and the few-label protocols with draws; the command writes on rank 0 only, also from a sharded
store. One torchrun launch runs every case."""
import json
import os
import textwrap

import numpy as np
import pytest
import torch
import torch.distributed as dist

from gan_probe.cli import main
from gan_probe.features.shards import shard_name, write_manifest_split
from gan_probe.features.store import save_store
from gan_probe.probe.knn import KnnBank, KnnConfig, _top, run_knn_protocol
from gan_probe.probe.standardize import fit_standardizer

from rank_launch import launch_two_ranks, rank_outputs

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo")

K_GRID = (1, 5, 20, 200)          # 200 is more than a rank's share of the bank: padded candidates
T_GRID = (0.05, 0.5)
PROTOCOLS = {
    "full": dict(vote="weighted", k_grid=K_GRID, T_grid=T_GRID, val_size=40, device="cpu", seed=2),
    "few": dict(vote="majority", k_grid=K_GRID, labels_per_class=6, draws=3, val_size=40, device="cpu", seed=2),
    "few_weighted": dict(vote="weighted", k_grid=K_GRID, T_grid=T_GRID, labels_per_class=6, draws=3,
                         selection_draws=2, val_size=40, device="cpu", seed=5),
}
CLI = ["--k-grid", "1,5,20,200", "--T-grid", "0.05,0.5", "--val-size", "40", "--labels-per-class", "6",
       "--draws", "2", "--device", "cpu"]

WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    from gan_probe.distributed import init_distributed, shutdown
    from gan_probe.probe.knn import KnnBank, KnnConfig, run_knn_protocol
    from gan_probe.probe.rows import sharded_rows
    from gan_probe.probe.standardize import fit_standardizer
    sys.path.insert(0, sys.argv[2])
    from test_knn_distributed import CLI, K_GRID, T_GRID, PROTOCOLS, data, fields

    tmp = Path(sys.argv[1])
    ctx = init_distributed("cpu")
    x, y, xt, yt = data()
    out = {}
    with sharded_rows(ctx):
        standardizer = fit_standardizer(x)
        out["mean"], out["scale"] = standardizer.mean.tolist(), standardizer.scale.tolist()
        bank = KnnBank(x, y, standardizer, "cpu", rows=np.arange(7, 300))
        sims, idx = bank.neighbours(bank._embed(xt, None), 250, block_rows=17)
        out["neighbours"] = [sims.tolist(), idx.tolist()]
        out["predict"] = {f"{k},{T}": p.tolist() for (k, T), p in
                          bank.predict(xt, K_GRID, T_GRID, "weighted", block_rows=17).items()}
        for name, kwargs in PROTOCOLS.items():
            out[name] = fields(run_knn_protocol(x, y, xt, yt, KnnConfig(**kwargs)))
    from gan_probe.cli import main
    out["cli"] = main(["knn", "--features", str(tmp / "store"), *CLI, "--json", str(tmp / "cli.json")])
    out["cli_sharded"] = main(["knn", "--features", str(tmp / "sharded"), *CLI, "--json",
                               str(tmp / "sharded.json")])
    out["cli_other"] = main(["knn", "--features", str(tmp / ("store" if ctx.rank == 0 else "other")), *CLI])
    (tmp / f"rank{ctx.rank}.json").write_text(json.dumps(out))
    shutdown()
""")


def data():
    """Rows on a coarse integer lattice: many duplicate rows (exactly equal similarities) across both shares."""
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 3, (3, 5))
    y = rng.integers(0, 3, 300)
    x = np.clip(centres[y] + rng.integers(-1, 2, (300, 5)), 0, 3).astype(np.float32)
    yt = rng.integers(0, 3, 90)
    xt = np.clip(centres[yt] + rng.integers(-1, 2, (90, 5)), 0, 3).astype(np.float32)
    return x, y, xt, yt


def fields(result):
    """The result's fields that must equal the one-process ones (timings differ)."""
    keep = ("accuracy", "accuracies", "k", "T", "n_train", "n_val", "standardization")
    out = {k: result[k] for k in keep}
    out["knn_selection"] = {k: v for k, v in result["knn_selection"].items()}
    return json.loads(json.dumps(out, default=float))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("knn_ddp")
    x, y, xt, yt = data()
    save_store(tmp / "store", x, y, xt, yt, {"dataset": "toy"})
    save_store(tmp / "other", x[:-1], y[:-1], xt, yt, {"dataset": "toy"})
    root = save_store(tmp / "sharded", x, y, xt, yt, {"dataset": "toy"})
    (root / "train_features.npy").unlink()
    for r, (start, end) in enumerate([(0, 150), (150, 300)]):
        np.save(root / shard_name("train", r, 2), x[start:end])
    write_manifest_split(root, "train", [shard_name("train", r, 2) for r in range(2)], [150, 150], x.shape[1])
    done = launch_two_ranks(tmp, WORKER, os.path.dirname(__file__))
    return tmp, done, rank_outputs(tmp)


def test_top_k_keeps_equal_values_in_column_order():
    rng = np.random.default_rng(1)
    s = torch.as_tensor(rng.integers(0, 4, (50, 40)).astype(np.float32))
    for k in (1, 7, 40):
        vals, cols = _top(s, k)
        ref = np.stack([np.lexsort((np.arange(40), -row))[:k] for row in s.numpy()])
        np.testing.assert_array_equal(cols.numpy(), ref)
        np.testing.assert_array_equal(vals.numpy(), np.take_along_axis(s.numpy(), ref, 1))


def test_two_rank_neighbours_and_predictions_equal_one_process(two_ranks):
    ranks = two_ranks[2]
    x, y, xt, yt = data()
    standardizer = fit_standardizer(x)
    np.testing.assert_allclose(ranks[0]["mean"], standardizer.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ranks[0]["scale"], standardizer.scale, rtol=1e-12)
    bank = KnnBank(x, y, standardizer, "cpu", rows=np.arange(7, 300))
    sims, idx = bank.neighbours(bank._embed(xt, None), 250, block_rows=17)
    assert ranks[0]["neighbours"][1] == idx.tolist()
    # a product with fewer bank rows may round differently in float32's last bit (the BLAS kernel depends on the
    # shapes); the neighbours and every prediction are the same
    np.testing.assert_allclose(ranks[0]["neighbours"][0], sims.numpy(), rtol=0, atol=4e-7)
    # the rows tie a lot: the 250 nearest include many equal similarities, in bank order
    assert (np.diff(sims.numpy(), axis=1) == 0).mean() > 0.3
    # ... and equal similarities that the two shares (bank rows [0, 146) and [146, 293)) both hold
    tied = np.diff(sims.numpy(), axis=1) == 0
    assert (tied & (idx.numpy()[:, :-1] < 146) & (idx.numpy()[:, 1:] >= 146)).any()
    one = {f"{k},{T}": p.tolist() for (k, T), p in bank.predict(xt, K_GRID, T_GRID, "weighted").items()}
    assert ranks[0]["predict"] == one
    assert ranks[0]["neighbours"] == ranks[1]["neighbours"] and ranks[0]["predict"] == ranks[1]["predict"]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_two_rank_protocols_equal_one_process(two_ranks, protocol):
    ranks = two_ranks[2]
    x, y, xt, yt = data()
    one = fields(run_knn_protocol(x, y, xt, yt, KnnConfig(**PROTOCOLS[protocol])))
    two = ranks[0][protocol]
    for key in ("accuracy", "accuracies", "k", "T", "n_train", "n_val", "knn_selection"):
        assert two[key] == one[key], key
    assert ranks[1][protocol] == two
    assert len({(row["k"], row["val_accuracy"]) for row in one["knn_selection"]["curve"]}) > 1


def test_two_rank_knn_command_equals_one_process_and_only_rank_0_writes(two_ranks, tmp_path):
    tmp, done, ranks = two_ranks
    assert [r["cli"] for r in ranks] == [0, 0] and [r["cli_sharded"] for r in ranks] == [0, 0]
    assert main(["knn", "--features", str(tmp / "store"), *CLI, "--json", str(tmp_path / "one.json")]) == 0
    one = json.loads((tmp_path / "one.json").read_text())
    for name in ("cli.json", "sharded.json"):
        two = json.loads((tmp / name).read_text())
        for key in ("accuracy", "accuracies", "k", "T", "knn_selection", "n_train", "n_val"):
            assert two[key] == one[key], (name, key)
    written = sorted(p.name for p in tmp.iterdir() if p.suffix == ".json")
    assert written == ["cli.json", "rank0.json", "rank1.json", "sharded.json"]
    assert done.stdout.count("wrote ") == 2         # one summary per command, from rank 0


def test_knn_ranks_that_read_different_stores_stop_with_one_line(two_ranks):
    tmp, done, ranks = two_ranks
    assert [r["cli_other"] for r in ranks] == [2, 2]
    lines = [line for line in done.stderr.splitlines() if "different feature store" in line]
    assert len(lines) == 1 and lines[0].startswith("gan-probe knn: error: rank 1 sees a different feature store")
