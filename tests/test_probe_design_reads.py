"""Streamed designs read ``x[rows]`` exactly, whether the rows are consecutive (views), gathered into a reused
buffer, read as spans of the source with a few rows left out, or read by NumPy (strides the gather cannot take),
and every block handed out is the caller's to keep."""
import numpy as np
import pytest
import torch

from gan_probe.probe.design import standardized_design
from gan_probe.probe.standardize import fit_standardizer


@pytest.fixture()
def stored(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (60, 7)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return np.load(tmp_path / "x.npy", mmap_mode="r")


ROWS = {
    "all": None,
    "consecutive": np.arange(5, 41),
    "sorted with gaps": np.array([0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 30, 31, 32, 59]),
    "a training split (spans)": np.setdiff1d(np.arange(60), [3, 9, 10, 22, 40, 41, 58]),
    "shuffled": np.random.default_rng(1).permutation(60)[:45],
    "counted from the end": np.array([-3, -2, -1, 0, 1, 5]),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_streamed_products_and_blocks_match_the_rows_read_at_once(stored, name):
    rows = ROWS[name]
    expected = np.asarray(stored if rows is None else stored[rows], dtype=np.float64)
    st = fit_standardizer(np.asarray(stored))
    standardised = (expected - st.mean) / st.scale
    design = standardized_design(stored, st, rows, intercept_scaling=1.0, chunk_rows=4, cache_bytes=0)
    assert design.fold is not None   # streamed, not resident
    W = torch.as_tensor(np.random.default_rng(2).normal(size=(8, 3)))
    Z = design.matmul(W).numpy()
    assert np.allclose(Z, standardised @ W[:-1].numpy() + W[-1].numpy(), rtol=1e-5, atol=1e-5)
    R = torch.as_tensor(np.random.default_rng(3).normal(size=(len(expected), 3)))
    G = design.rmatmul(R).numpy()
    assert np.allclose(G[:-1], standardised.T @ R.numpy(), rtol=1e-5, atol=1e-4)
    assert np.allclose(G[-1], R.numpy().sum(0))
    # without a standardizer the blocks are the raw rows; collected together they must not share a buffer
    raw = standardized_design(stored, None, rows, intercept_scaling=None, chunk_rows=4, cache_bytes=0)
    assert np.array_equal(raw.dense().numpy(), expected.astype(np.float32))
    resident = standardized_design(stored, None, rows, intercept_scaling=None, chunk_rows=4)
    assert resident.resident is not None and np.array_equal(resident.dense().numpy(), expected.astype(np.float32))


@pytest.mark.parametrize("layout", ["float64", "strided columns", "reversed rows"])
def test_rows_of_other_layouts_are_read_exactly(layout):
    base = np.random.default_rng(4).normal(size=(30, 10))
    x = {"float64": base, "strided columns": base.astype(np.float32)[:, ::2],
         "reversed rows": base.astype(np.float32)[::-1]}[layout]
    rows = np.array([2, 3, 4, 9, 1, 20, 21, 29])
    design = standardized_design(x, None, rows, intercept_scaling=None, chunk_rows=3, cache_bytes=0)
    assert design.dense().dtype == (torch.float64 if layout == "float64" else torch.float32)
    assert np.array_equal(design.dense().numpy(), x[rows])


def test_a_training_split_is_read_as_spans_and_every_pass_matches_its_rows(stored):
    """Rows that fill most of their span are read as views of it (no gather); the fused pass, its first-pass row
    norms and bfloat16 copy, the margins and ``X~^T R`` all equal those of the rows themselves."""
    rows = ROWS["a training split (spans)"]
    st = fit_standardizer(np.asarray(stored))
    design = standardized_design(stored, st, rows, intercept_scaling=1.0, chunk_rows=4, cache_bytes=0)
    reads = list(design._read())
    # chunks of 4 rows: [0 1 2 4] and [19 20 21 23] have a left-out row inside; the others are consecutive
    spans = [(start, end, block.shape[0], take.tolist()) for start, end, block, take in reads if take is not None]
    assert spans == [(0, 4, 5, [0, 1, 2, 4]), (16, 20, 5, [0, 1, 2, 4])]
    standardised = (np.asarray(stored[rows], dtype=np.float64) - st.mean) / st.scale
    X = np.hstack([standardised, np.ones((len(rows), 1))])
    W = torch.as_tensor(np.random.default_rng(5).normal(size=(8, 3)))
    design.request_shadow(torch.bfloat16)
    Z, G = design.fused(W, lambda s, e, Zc: Zc * (torch.arange(s, e, dtype=torch.float64)[:, None] + 1))
    assert np.allclose(Z.numpy(), X @ W.numpy(), rtol=1e-5, atol=1e-5)
    coef = (X @ W.numpy()) * (np.arange(len(rows))[:, None] + 1)
    assert np.allclose(G.numpy(), X.T @ coef, rtol=1e-4, atol=1e-3)
    assert np.allclose(design.row_sq.numpy(), (X * X).sum(1), rtol=1e-5)
    assert np.allclose(design.shadow.dense().float().numpy(), standardised, rtol=1e-2, atol=1e-2)
    R = torch.as_tensor(np.random.default_rng(6).normal(size=(len(rows), 3)))
    assert np.allclose(design.rmatmul(R).numpy(), X.T @ R.numpy(), rtol=1e-5, atol=1e-4)
