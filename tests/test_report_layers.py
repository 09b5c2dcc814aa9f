"""The report's per-layer profile: results that differ only in the probed layers (``svm --layers``)."""
import json

from report_synthetic import METAS, probe, write

from gan_probe.report.build import build_report
from gan_probe.report.results import load_results

MODEL = {"image_size": 32, "d_stride1_pairs": True, "preset": "paper32"}


def _layer_result(tmp_path, family, layers, accuracy, name):
    meta = {**METAS[family], "model": MODEL, "layers": layers, "layer_names": [f"conv{i + 1}" for i in layers]}
    return write(tmp_path / f"{name}.json", probe(family, accuracy=accuracy, features_meta=meta))


def test_layer_subsets_form_a_profile_table_and_figure(tmp_path):
    acc = {0: 0.50, 2: 0.62, 3: 0.60}  # conv2 alone not measured
    for layer, a in acc.items():
        _layer_result(tmp_path / "in", "dcgan", [layer], a, f"dcgan-conv{layer + 1}")
    for k in (2, 3, 4):
        _layer_result(tmp_path / "in", "dcgan", list(range(k)), 0.60 + 0.02 * k, f"dcgan-first{k}")
    _layer_result(tmp_path / "in", "random-d", [0], 0.40, "random-conv1")  # one subset: not a profile
    write(tmp_path / "in" / "dcgan-all.json", probe("dcgan", accuracy=0.70, features_meta={**METAS["dcgan"],
                                                                                           "model": MODEL}))
    results = load_results([tmp_path / "in"])
    labels = {r.path.rsplit("/", 1)[1]: r.label for r in results.probes}
    assert labels["dcgan-conv3.json"] == "DCGAN (paper32), conv3 + L2-SVM"
    assert labels["dcgan-first4.json"] == "DCGAN (paper32), conv1-4 + L2-SVM"
    assert labels["dcgan-all.json"] == "DCGAN (paper32) + L2-SVM"
    report = build_report([tmp_path / "in"], tmp_path / "report")
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    tables = {t["name"]: t for t in data["tables"]}
    profile = tables["layer_profile"]
    assert [row["Model"] for row in profile["display"]] == ["DCGAN (paper32) + L2-SVM"]
    row = profile["display"][0]
    assert row["conv3"] == "62.0% (±0.4%)" and row["conv1-4"] == "68.0% (±0.4%)" and row["conv2"] == "-"
    assert "conv5" not in row
    # the profile's rows are not in the paper-style CIFAR-10 table; the lone subset and the full model are
    cifar = [r["Model"] for r in tables["cifar10"]["display"]]
    assert not any("conv3" in m for m in cifar)
    assert "Random-weight D (paper32), conv1 + L2-SVM" in cifar and "DCGAN (paper32) + L2-SVM" in cifar
    assert len(tables["probes"]["display"]) == 8  # every result stays in the table of all results
    figures = [f.path for f in report.figures]
    assert "figures/layer_profile_cifar10.png" in figures
    assert (tmp_path / "report" / "figures" / "layer_profile_cifar10.png").stat().st_size > 10_000
