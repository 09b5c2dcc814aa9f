import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from gan_probe.report import (ResultError, cifar10_table, format_pm, latex_escape, load_results, probe_table,
                              published_rows, sample_quality_table, svhn_table, to_latex, to_markdown, write_csv)
from gan_probe.report.results import parse_probe
from gan_probe.report.assemble import build_tables
from gan_probe.report.tables import CIFAR_COLUMNS
from report_synthetic import DATA, GRID, METAS, fid, inception, probe, write


def _load(tmp_path, objs):
    paths = [write(tmp_path / f"{name}.json", obj) for name, obj in objs.items()]
    return load_results(paths)


# ----------------------------------------------------------------------------------------------- published


def test_published_rows_are_the_papers_tables():
    t1 = [(r.model, r.protocol, r.value, r.std, r.max_feature_units) for r in published_rows("cifar10")]
    assert t1 == [
        ("1 Layer K-means", "full", 80.6, None, 4800), ("1 Layer K-means", "few-labels", 63.7, 0.7, 4800),
        ("3 Layer K-means Learned RF", "full", 82.0, None, 3200),
        ("3 Layer K-means Learned RF", "few-labels", 70.7, 0.7, 3200),
        ("View Invariant K-means", "full", 81.9, None, 6400), ("View Invariant K-means", "few-labels", 72.6, 0.7, 6400),
        ("Exemplar CNN", "full", 84.3, None, 1024), ("Exemplar CNN", "few-labels", 77.4, 0.2, 1024),
        ("DCGAN + L2-SVM", "full", 82.8, None, 512), ("DCGAN + L2-SVM", "few-labels", 73.8, 0.4, 512)]
    t2 = [(r.model, r.value) for r in published_rows("svhn")]
    assert t2 == [("KNN", 77.93), ("TSVM", 66.55), ("M1+KNN", 65.63), ("M1+TSVM", 54.33), ("M1+M2", 36.02),
                  ("SWWAE without dropout", 27.83), ("SWWAE with dropout", 23.56), ("DCGAN + L2-SVM", 22.48),
                  ("Supervised CNN, same architecture (validation error)", 28.87)]
    assert {r.citation for r in published_rows("cifar10")} == {"Radford, Metz & Chintala, ICLR 2016, Table 1"}
    assert {r.citation for r in published_rows("svhn")} == {"Radford, Metz & Chintala, ICLR 2016, Table 2"}
    kmeans = [r for r in published_rows("cifar10") if "K-means" in r.model and "View" not in r.model]
    assert kmeans and all(r.original == "Coates & Ng 2011" for r in kmeans)
    assert published_rows("cifar10")[0].decimals == 1 and published_rows("cifar10")[2].value == 82.0
    with pytest.raises(ValueError):
        published_rows("table3")


# ----------------------------------------------------------------------------------------------- formatting


def test_plus_minus_formatting_precision():
    assert format_pm(0.73849, 0.00412, 1, scale=100) == "73.8% (±0.4%)"
    assert format_pm(0.2310, 0.0071, 2, scale=100) == "23.10% (±0.71%)"
    assert format_pm(73.8, 0.4, 1) == "73.8% (±0.4%)"
    assert format_pm(82.0, None, 1) == "82.0%"
    assert format_pm(6.4149, 0.0712, 2, unit="", style="inline") == "6.41 ± 0.07"
    assert format_pm(None, 0.1, 1) == "-"


def test_latex_escaping():
    assert latex_escape("a_b & 50% #1 $x$ {y} ~ ^ \\") == (
        r"a\_b \& 50\% \#1 \$x\$ \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{}")
    assert latex_escape("73.8% (±0.4%)") == r"73.8\% ($\pm$0.4\%)"
    assert latex_escape("1.0 +- 0.1") == r"1.0 $\pm$ 0.1"


# ----------------------------------------------------------------------------------------------- CIFAR-10


def test_cifar10_table_layout_published_then_measured(tmp_path):
    res = _load(tmp_path, {
        "dcgan_full": probe("dcgan", "full", 0.8283, None),
        "dcgan_400": probe("dcgan", "few-labels", 0.73849, 0.00412),
        "kmeans_400": probe("kmeans", "few-labels", 0.6612, 0.0071),
        "pixels_full": probe("pixels", "full", 0.41, None),
        "dcgan_100": probe("dcgan", "few-labels", 0.69, 0.01, labels_per_class=100),  # not a Table 1 cell
    })
    table = cifar10_table(res.probes)
    d = table.display
    assert list(d.columns) == CIFAR_COLUMNS == ["Model", "Accuracy (all labels)", "Accuracy (400 per class)",
                                                "Labels choosing C", "Max # of feature units", "Source", "Reference"]
    assert d["Model"].tolist() == ["1 Layer K-means", "3 Layer K-means Learned RF", "View Invariant K-means",
                                   "Exemplar CNN", "DCGAN + L2-SVM", "DCGAN (paper32) + L2-SVM",
                                   "k-means (1600 centroids) + L2-SVM", "Raw pixels + L2-SVM"]
    assert d["Source"].tolist() == ["published"] * 5 + ["measured"] * 3
    assert d.iloc[4].tolist() == ["DCGAN + L2-SVM", "82.8%", "73.8% (±0.4%)", "-", "512", "published",
                                  "Radford, Metz & Chintala, ICLR 2016, Table 1"]
    assert d.iloc[0]["Reference"] == "Radford, Metz & Chintala, ICLR 2016, Table 1; Coates & Ng 2011"
    assert d.iloc[5].tolist() == ["DCGAN (paper32) + L2-SVM", "82.8%", "73.8% (±0.4%)", "-", "512", "measured",
                                  "[a]"]
    assert d.iloc[6].tolist()[1:5] == ["-", "66.1% (±0.7%)", "-", "1600"]
    assert d.iloc[7].tolist()[1:5] == ["41.0%", "-", "-", "-"]
    assert table.rule_before == [5]
    # measured rows name their data, checkpoint and protocol in the notes
    note_a = table.notes[0]
    assert note_a.startswith("[a] DCGAN (paper32) + L2-SVM: ")
    for text in ("dcgan_full.json: full protocol", "dcgan_400.json: few-labels protocol, 400 per class",
                 "checkpoint runs/a/checkpoint.pt (sha256 cccccccccccc", "train = cifar10 n=50000 sha256 aaaaaaaaaaaa"):
        assert text in note_a
    data = table.data
    assert data.loc[5, "accuracy_400_pct"] == pytest.approx(73.849)
    assert data.loc[5, "accuracy_400_std_pct"] == pytest.approx(0.412)
    assert data.loc[0, "accuracy_all_pct"] == 80.6 and pd.isna(data.loc[0, "accuracy_all_std_pct"])


def test_cifar10_table_without_published_rows(tmp_path):
    res = _load(tmp_path, {"d": probe("dcgan", "few-labels", 0.7, 0.01)})
    table = cifar10_table(res.probes, published=False)
    assert table.display["Source"].tolist() == ["measured"] and table.rule_before == []


def test_no_table_without_matching_results(tmp_path):
    res = _load(tmp_path, {"d": probe("dcgan", "few-labels", 0.7, 0.01, dataset="digits")})
    assert cifar10_table(res.probes) is None and svhn_table(res.probes) is None
    assert sample_quality_table(res.samples) is None
    assert [t.name for t in build_tables(res.probes, res.samples)] == ["probes"]


def test_svhn_table_error_and_order(tmp_path):
    meta_svhn = {"source": "dcgan", "preset": "paper32", "dataset": "svhn"}
    obj = probe("dcgan", "svhn", 0.769, 0.0071, labels_per_class=None, dataset="svhn", n_train=1000,
                features_meta=meta_svhn)
    del obj["accuracy"]  # error only
    res = _load(tmp_path, {"svhn": obj})
    assert res.probes[0].accuracy == pytest.approx(0.769) and res.probes[0].labels_per_class == 100
    table = svhn_table(res.probes)
    d = table.display
    assert list(d.columns) == ["Model", "Test error (1,000 labels)", "Labels choosing C", "Source", "Reference"]
    assert d["Model"].tolist()[:9] == [r.model for r in published_rows("svhn")]
    assert d.iloc[7, 1] == "22.48%"
    assert d.iloc[9].tolist() == ["DCGAN (paper32) + L2-SVM", "23.10% (±0.71%)", "-", "measured", "[a]"]
    assert table.rule_before == [9]


def test_sample_quality_merges_is_and_fid(tmp_path):
    res = _load(tmp_path, {"is": inception(), "fid": fid(), "real": inception(11.237, 0.095, label="CIFAR-10 train")})
    table = sample_quality_table(res.samples)
    d = table.display
    assert list(d.columns) == ["Model", "Inception Score", "FID", "Source", "Reference"]
    assert d.iloc[0].tolist()[:4] == ["CIFAR-10 training images (real data)", "11.24 ± 0.12", "-", "published"]
    rows = {r["Model"]: r for r in d.to_dict(orient="records")}
    assert rows["G samples (a/checkpoint.pt)"]["Inception Score"] == "6.41 ± 0.07"
    assert rows["G samples (a/checkpoint.pt)"]["FID"] == "37.41"
    assert rows["CIFAR-10 train"]["FID"] == "-"
    assert any("FID vs cifar10 train images" in n for n in table.notes)


def test_probe_table_every_result(tmp_path):
    res = _load(tmp_path, {"a": probe("dcgan", "full", 0.83, None), "b": probe("kmeans", "few-labels", 0.66, 0.01)})
    table = probe_table(res.probes)
    assert table.display["Protocol"].tolist() == ["full", "few-labels"]
    assert table.display["Labels / class"].tolist() == ["all", "400"]
    assert table.display["Accuracy"].tolist() == ["83.00%", "66.00% (±1.00%)"]


# ----------------------------------------------------------------------------------------------- renderers


def test_markdown_rendering(tmp_path):
    res = _load(tmp_path, {"d": probe("dcgan", "few-labels", 0.7, 0.01, label="A | B")})
    md = to_markdown(cifar10_table(res.probes))
    lines = md.splitlines()
    assert lines[0] == "| " + " | ".join(CIFAR_COLUMNS) + " |"
    assert lines[1] == "|---|---:|---:|---:|---:|---|---|"
    assert "| A \\| B | - | 70.0% (±1.0%) | - | 512 | measured | [a] |" in lines
    assert len(lines[2].split(" | ")) == 7


def test_latex_table_is_booktabs_and_escaped(tmp_path):
    res = _load(tmp_path, {"d": probe("dcgan", "few-labels", 0.7, 0.01, label="run_2 & #1 100%")})
    tex = to_latex(cifar10_table(res.probes))
    assert "\\begin{tabular}{lrrrrlp{5cm}}" in tex
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert rule in tex
    assert "run\\_2 \\& \\#1 100\\% & - & 70.0\\% ($\\pm$1.0\\%) & - & 512 & measured & [a] \\\\" in tex
    assert "Max \\# of feature units" in tex
    body = tex.split("\\midrule", 1)[1]
    stripped = re.sub(r"\\[a-zA-Z]+(\{[^}]*\})*|\\[&%#_${}]|\$\\pm\$", "", body)
    assert not re.search(r"(?<!\\)[%#_]", stripped.replace(" & ", " ")), stripped
    assert tex.count("\\midrule") == 2  # header rule + the rule between published and measured rows


def test_csv_round_trip(tmp_path):
    res = _load(tmp_path, {"f": probe("dcgan", "full", 0.8283, None), "k": probe("kmeans", "few-labels", 0.66, 0.007),
                           "s": probe("dcgan", "svhn", 0.77, 0.007, dataset="svhn", n_train=1000)})
    for table in build_tables(res.probes, res.samples):
        path = write_csv(table, tmp_path / f"{table.name}.csv")
        back = pd.read_csv(path)
        assert list(back.columns) == list(table.data.columns)
        def norm(df):
            return df.astype(object).where(df.notna(), np.nan)

        pd.testing.assert_frame_equal(norm(back), norm(table.data), check_dtype=False)
        assert back.notna().sum().sum() == table.data.notna().sum().sum() > 0


# ----------------------------------------------------------------------------------------------- labels and input


def test_labels_from_json_meta_and_file(tmp_path):
    res = _load(tmp_path, {
        "explicit": probe("dcgan", model="My GAN"), "meta_label": probe("dcgan", protocol="full", features_meta={
            "source": "dcgan", "label": "From meta"}),
        "rand": probe("random-d"), "km": probe("kmeans", protocol="full"), "px": probe("pixels", dataset="svhn"),
        "plain": probe("dcgan", dataset="digits", features_meta={}),
    })
    labels = {p.path.rsplit("/", 1)[1]: (p.label, p.family) for p in res.probes}
    assert labels == {
        "explicit.json": ("My GAN", "dcgan"), "meta_label.json": ("From meta", "dcgan"),
        "rand.json": ("Random-weight D (paper32) + L2-SVM", "random-d"),
        "km.json": ("k-means (1600 centroids) + L2-SVM", "kmeans"), "px.json": ("Raw pixels + L2-SVM", "pixels"),
        "plain.json": ("plain", "other")}
    units = {p.path.rsplit("/", 1)[1]: p.max_feature_units for p in res.probes}
    assert units["rand.json"] == 512 and units["km.json"] == 1600 and units["px.json"] is None


def test_colliding_labels_are_made_unique(tmp_path):
    other = dict(probe("dcgan")["features_meta"], checkpoint="runs/b/checkpoint.pt", checkpoint_sha256="d" * 64)
    res = _load(tmp_path, {"a400": probe("dcgan"), "b400": probe("dcgan", features_meta=other),
                           "a400_again": probe("kmeans"), "a400_twice": probe("kmeans")})
    labels = sorted(p.label for p in res.probes)
    assert labels == ["DCGAN (paper32) + L2-SVM [a/checkpoint.pt]", "DCGAN (paper32) + L2-SVM [b/checkpoint.pt]",
                      "k-means (1600 centroids) + L2-SVM [a400_again]",
                      "k-means (1600 centroids) + L2-SVM [a400_twice]"]
    assert len(res.notes) == 2
    assert len(cifar10_table(res.probes).display) == 5 + 4


def test_missing_optional_keys_show_dash(tmp_path):
    res = _load(tmp_path, {"min": {"protocol": "full", "accuracy": 0.5, "dataset": "cifar10"}})
    p = res.probes[0]
    assert (p.C, p.draws, p.accuracy_std, p.n_features, p.c_curve) == (None, None, None, None, [])
    d = cifar10_table(res.probes).display.iloc[-1].tolist()
    assert d == ["min", "50.0%", "-", "-", "-", "measured", "[a]"]
    row = probe_table(res.probes).display.iloc[0].tolist()
    assert row[4:10] == ["50.00%", "50.00%", "-", "-", "-", "-"]


@pytest.mark.parametrize("obj, message", [
    ({"protocol": "full", "accuracy": 82.8}, "outside [0, 1]"),
    ({"protocol": "full", "accuracy": "0.8"}, "must be a finite number"),
    ({"protocol": "weird", "accuracy": 0.8}, "'protocol' must be one of"),
    ({"protocol": "full", "accuracy": 0.8, "error": 0.3}, "do not add up to 1"),
    ({"protocol": "few-labels", "accuracy": 0.8, "labels_per_class": 4.5}, "must be an integer"),
    ({"protocol": "full", "accuracy": 0.8, "C_selection": {"curve": [[1.0]]}}, "C_selection.curve"),
])
def test_bad_probe_objects_name_the_file(obj, message):
    with pytest.raises(ResultError) as exc:
        parse_probe(obj, "results/x.json")
    assert str(exc.value).startswith("results/x.json: ") and message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_sample_source_descriptions_as_the_metric_commands_write_them(tmp_path):
    ckpt = {"kind": "checkpoint", "n": 50000, "path": "runs/cifar/checkpoint.pt", "sha256": "f" * 64, "step": 5000}
    res = _load(tmp_path, {
        "is": {"metric": "inception_score", "inception_score_mean": 6.2, "inception_score_std": 0.05, "n": 50000,
               "conventions": {"splits": 10}, "source": ckpt},
        "fid": {"metric": "fid", "fid": 40.0, "n_a": 50000, "a": ckpt,
                "b": {"kind": "dataset", "dataset": "cifar10", "split": "train", "n": 50000},
                "warnings": ["different network weights"]}})
    assert [s.label for s in res.samples] == ["G samples (cifar/checkpoint.pt, step 5000)"] * 2
    table = sample_quality_table(res.samples)
    assert table.display.iloc[1, :3].tolist() == ["G samples (cifar/checkpoint.pt, step 5000)", "6.20 ± 0.05", "40.00"]
    assert "FID vs cifar10 train images" in table.notes[0] and "WARNING: different network weights" in table.notes[0]


def test_provenance_stage_times_checksums_and_commands(tmp_path):
    from gan_probe.report.provenance_block import checksums_frame, commands, stage_times_frame

    km_meta = {"source": "kmeans", "key": "k1", "config": {"centroids": 1600}, "data": probe()["features_meta"]["data"],
               "seconds": {"dictionary": 12.5, "encode": 30.0}, "provenance": {"command": "gan-probe kmeans"}}
    res = _load(tmp_path, {"d400": probe("dcgan"), "dfull": probe("dcgan", "full"),
                           "k400": probe("kmeans", features_meta=km_meta), "kfull": probe("kmeans", "full",
                                                                                          features_meta=km_meta)})
    stages = stage_times_frame(res)[["Stage", "Seconds"]].values.tolist()
    assert stages == [["features (dcgan)", 40.0], ["svm (few-labels)", 12.5], ["svm (full)", 12.5],
                      ["features (kmeans: dictionary)", 12.5], ["features (kmeans: encode)", 30.0],
                      ["svm (few-labels)", 12.5], ["svm (full)", 12.5]]  # shared feature stores counted once
    sums = checksums_frame(res)
    assert sums["Item"].tolist() == ["data: cifar10 train, n=50000", "data: cifar10 test, n=10000",
                                     "checkpoint: runs/a/checkpoint.pt"]
    assert sums["sha256"].tolist() == ["a" * 64, "b" * 64, "c" * 64]
    assert sums["Used by"].iloc[0].count(".json") == 4
    cmds = [c for _, c in commands(res)]
    assert cmds == ["gan-probe extract --checkpoint runs/a/checkpoint.pt --out feats/d",
                    "gan-probe svm feats/dcgan --protocol few-labels", "gan-probe svm feats/dcgan --protocol full",
                    "gan-probe kmeans", "gan-probe svm feats/kmeans --protocol few-labels",
                    "gan-probe svm feats/kmeans --protocol full"]


def test_features_meta_read_from_the_named_store_when_not_embedded(tmp_path):
    store = tmp_path / "feats" / "km"
    write(store / "meta.json", {"source": "kmeans", "config": {"centroids": 400}})
    obj = probe("kmeans", features="feats/km")
    del obj["features_meta"]
    res = _load(tmp_path, {"k": obj})  # relative to the result file's directory
    assert res.probes[0].label == "k-means (400 centroids) + L2-SVM" and res.probes[0].max_feature_units == 400


def test_latex_guards_a_leading_bracket_and_wide_tables(tmp_path):
    res = _load(tmp_path, {"d": probe("dcgan", label="[ablation] no BN")})
    tex = to_latex(cifar10_table(res.probes, published=False))
    assert "\\midrule\n{}[ablation] no BN & " in tex
    svhn = _load(tmp_path, {"s": probe("dcgan", "svhn", dataset="svhn", labels_per_class=None, n_train=1000)})
    narrow = to_latex(svhn_table(svhn.probes, published=False))
    assert narrow.count("\\begin{table}[t]") == 1 and narrow.rstrip().endswith("\\end{table}")
    wide = to_latex(probe_table(res.probes))
    assert "\\begin{table*}[t]\n\\centering\n\\small\n" in wide and wide.rstrip().endswith("\\end{table*}")


def test_dataset_spellings_are_normalised(tmp_path):
    res = _load(tmp_path, {"a": probe("dcgan", dataset="CIFAR-10"), "b": probe("kmeans", dataset="Cifar10")})
    assert [p.dataset for p in res.probes] == ["cifar10", "cifar10"]
    assert len(cifar10_table(res.probes).display) == 7


def test_variant_rows_name_their_loss_and_latent(tmp_path):
    def meta(loss, latent, preset="small32"):
        return dict(METAS["dcgan"], preset=preset, loss=loss, model={"latent": latent, "mog_components": 10},
                    checkpoint=f"runs/{loss}-{latent}/checkpoint.pt", checkpoint_sha256=(loss + latent)[:1] * 64)
    res = _load(tmp_path, {"bce": probe("dcgan", features_meta=meta("bce", "normal")),
                           "ls": probe("dcgan", features_meta=meta("ls", "normal")),
                           "mog": probe("dcgan", features_meta=meta("hinge", "mog")),
                           "paper": probe("dcgan", features_meta=meta("bce", "uniform", preset="paper32"))})
    labels = {p.path.rsplit("/", 1)[1]: p.label for p in res.probes}
    assert labels == {"bce.json": "DCGAN (small32) + L2-SVM",
                      "ls.json": "DCGAN (small32, least-squares loss) + L2-SVM",
                      "mog.json": "DCGAN (small32, hinge loss, mog latent (10 components)) + L2-SVM",
                      "paper.json": "DCGAN (paper32) + L2-SVM"}


def test_dcgan_row_labels_name_widths_and_training_data_so_two_models_never_share_a_label():
    from gan_probe.report.results import probe_label

    base = {"preset": "paper32", "model": {"ndf": 32, "ngf": 32, "latent": "uniform"}}
    a = probe_label({}, {**base, "trained_on": "imagenet"}, "dcgan", "x")
    b = probe_label({}, {**base, "trained_on": "svhn"}, "dcgan", "x")
    assert a == "DCGAN (paper32, ndf 32, ngf 32; trained on imagenet) + L2-SVM" and a != b
    assert probe_label({}, {"preset": "paper32", "trained_on": "svhn"}, "dcgan", "x") == \
        "DCGAN (paper32; trained on svhn) + L2-SVM"
    assert probe_label({}, base, "random-d", "x") == "Random-weight D (paper32, ndf 32, ngf 32) + L2-SVM"


# ----------------------------------------------------------------------------------------------- what a row says


def test_rows_say_which_images_scored_them_and_how_many_labels_chose_C(tmp_path):
    held = {**METAS["dcgan"], "holdout": 10000,
            "data": {"train": {"dataset": "cifar10", "split": "train", "n": 40000},
                     "test": {"dataset": "cifar10", "split": "train (held out)", "n": 10000}}}
    res = _load(tmp_path, {
        "full": probe("dcgan", "full", 0.7, 0.0, features_meta=held,
                      C_selection={"mode": "auto", "grid": GRID, "chosen": 1e-3, "val_size": 4000, "curve": []}),
        "few": probe("dcgan", "few-labels", 0.6, 0.01, features_meta=held,
                     C_selection={"mode": "auto", "grid": GRID, "chosen": 1e-3, "val_size": 1000, "curve": []}),
        "fixed": probe("kmeans", "few-labels", 0.5, 0.02, C=0.01,
                       C_selection={"mode": "fixed", "grid": [0.01], "chosen": 0.01, "curve": [], "val_size": None}),
    })
    by_path = {p.path.rsplit("/", 1)[-1]: p for p in res.probes}
    assert (by_path["full.json"].evaluated_on, by_path["full.json"].selection_labels) == ("held out of train", 4000)
    assert by_path["fixed.json"].hyperparameters_fixed and by_path["fixed.json"].evaluated_on == "test split"

    table = cifar10_table(res.probes)
    rows = {r["Model"]: r for r in table.display.to_dict(orient="records")}
    dcgan, kmeans = rows["DCGAN (paper32) + L2-SVM"], rows["k-means (1600 centroids) + L2-SVM"]
    assert dcgan["Accuracy (all labels)"] == "70.0%"              # one draw: no ±
    assert dcgan["Labels choosing C"] == "4,000 val. / 1,000 val." and kmeans["Labels choosing C"] == "fixed"
    assert rows["DCGAN + L2-SVM"]["Labels choosing C"] == "-"     # the paper does not say
    scored = next(n for n in table.notes if n.startswith("Measured rows"))
    assert "10,000 images held out of the CIFAR-10 training images (not the official test set)" in scored
    assert "the CIFAR-10 test split" in scored                     # the k-means row's store has no holdout
    assert not any("Accuracies on the CIFAR-10 test set" in n for n in table.notes)
    from gan_probe.report.tables import describe_test_images

    unsized = [dataclasses.replace(by_path["full.json"], n_test=None)]
    assert describe_test_images(unsized, "CIFAR-10") == ("Measured rows are scored on images held out of the CIFAR-10 "
                                                         "training images (not the official test set).")

    probes = probe_table(res.probes).display
    by_file = {r["File"].rsplit("/", 1)[-1]: r for r in probes.to_dict(orient="records")}
    assert by_file["full.json"]["Accuracy"] == "70.00%" and by_file["few.json"]["Accuracy"] == "60.00% (±1.00%)"
    assert by_file["full.json"]["Test images"] == "10000 (held out of train)"
    assert by_file["fixed.json"]["C"] == "0.01 (fixed)" and by_file["full.json"]["C"] == "0.001"
    assert by_file["few.json"]["Labels choosing C"] == "1,000 val."
    data = probe_table(res.probes).data
    assert data["C_fixed"].tolist().count(True) == 1 and sorted(data["selection_labels"].dropna()) == [1000, 4000]


def test_representation_comparison_puts_svm_and_knn_side_by_side(tmp_path):
    from gan_probe.report.comparison import comparison_table

    svhn_meta = {**METAS["pixels"], "dataset": "svhn", "holdout": 2000}
    res = _load(tmp_path, {
        "d_svm": probe("dcgan", "few-labels", 0.70, 0.01),
        "d_knn": probe("dcgan", "few-labels", 0.55, 0.02, classifier="knn", vote="weighted", C=None),
        "p_svm": probe("pixels", "svhn", 0.30, 0.01, dataset="svhn", labels_per_class=None, n_train=1000, n_test=2000,
                       features_meta=svhn_meta),
        "p_knn": probe("pixels", "svhn", 0.35, 0.01, dataset="svhn", labels_per_class=None, n_train=1000, n_test=2000,
                       features_meta=svhn_meta, classifier="knn", vote="majority", C=None),
        # probed by the L2-SVM alone (a representation, and a setting of a paired one): not in this table
        "r_svm": probe("random-d", "few-labels", 0.50, 0.01),
        "d_full": probe("dcgan", "full", 0.72, 0.0),
    })
    labels = sorted(p.label for p in res.probes)
    assert "Raw pixels + kNN (majority vote)" in labels and "DCGAN (paper32) + kNN (weighted vote)" in labels
    table = comparison_table(res.probes)
    assert list(table.display.columns) == [
        "Representation", "CIFAR-10, 400 per class (L2-SVM)", "CIFAR-10, 400 per class (kNN, weighted vote)",
        "CIFAR-10, 400 per class (kNN, majority vote)", "SVHN, 1,000 labels, error (L2-SVM)",
        "SVHN, 1,000 labels, error (kNN, weighted vote)", "SVHN, 1,000 labels, error (kNN, majority vote)"]
    rows = {r["Representation"]: list(r.values())[1:] for r in table.display.to_dict(orient="records")}
    assert rows == {"DCGAN (paper32)": ["70.0% (±1.0%)", "55.0% (±2.0%)", "-", "-", "-", "-"],
                    "Raw pixels": ["-", "-", "-", "70.00% (±1.00%)", "-", "65.00% (±1.00%)"]}
    assert any("2,000 images held out of the SVHN training images" in n for n in table.notes)
    assert comparison_table([p for p in res.probes if p.classifier == "svm"]) is None
    # a kNN result whose representation has no L2-SVM result in its setting pairs with nothing
    assert comparison_table([p for p in res.probes if p.classifier == "knn" or p.dataset != "svhn"
                             and p.protocol != "few-labels"]) is None


def test_vae_and_torchvision_stores_get_their_own_labels(tmp_path):
    vae = {"source": "vae", "preset": "paper32", "trained_on": "imagenet", "model": {"preset": "paper32",
           "image_size": 32, "d_stride1_pairs": True, "ndf": 32, "ngf": 32, "latent": "normal"}, "data": DATA}
    all_layers = {**vae, "layers": list(range(7)), "layer_names": [f"conv{i}" for i in range(1, 7)] + ["mu"]}
    mu = {**vae, "layers": [6], "layer_names": ["mu"]}
    conv = {**vae, "layers": list(range(6)), "layer_names": [f"conv{i}" for i in range(1, 7)]}
    net = {"source": "torchvision", "model": "resnet18", "weights": None, "layer_names": ["layer1", "layer4"],
           "dataset": "cifar10", "data": DATA}
    res = _load(tmp_path, {name: probe("dcgan", features_meta=meta) for name, meta in
                           {"all": all_layers, "mu": mu, "conv": conv, "net": net}.items()})
    by_file = {p.path.rsplit("/", 1)[-1]: p for p in res.probes}
    assert by_file["all.json"].label == "VAE (paper32, ndf 32, ngf 32; trained on imagenet) + L2-SVM"
    assert by_file["mu.json"].label == ("VAE (paper32, ndf 32, ngf 32; trained on imagenet), mu (M1) + "
                                        "L2-SVM")
    assert by_file["conv.json"].label.endswith(", conv1-6 + L2-SVM") and by_file["conv.json"].family == "vae"
    assert by_file["net.json"].label == "resnet18 (torchvision, random weights; layer1, layer4) + L2-SVM"
    assert by_file["net.json"].family == "network"
