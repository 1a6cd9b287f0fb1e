"""The linear-transfer protocol: C chosen on val by the dataset's metric, refit on train + val, scored on test;
multi-label VOC07 by per-class classifiers and 11-point mAP; fine-tuning on a target; the papers' table."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from sempos.data.prepare import stratified_val, transfer_image_size
from sempos.errors import DatasetError
from sempos.eval.transfer import logistic_transfer
from sempos.eval.transfer_metrics import mean_per_class_accuracy
from sempos.report import transfer_table


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: a second intra-op thread only adds spin-waits on a busy 2-core machine (25 s -> 1 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def planted(n, d=6, k=3, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(99).normal(size=(d, k))
    x = rng.normal(size=(n, d))
    return x, (x @ w + noise * rng.normal(size=(n, k))).argmax(1)


def test_selection_and_score_follow_the_metric():
    # Class 2 is rare: top-1 hides how it is classified, mean per-class accuracy weighs it as much as the others.
    x, y = planted(1500, seed=1, noise=1.0)
    keep = (y != 2) | (np.arange(len(y)) % 8 == 0)
    x, y = x[keep], y[keep]
    tr, va, te = slice(0, 500), slice(500, 800), slice(800, None)
    grid = [1e-3, 1e-2, 1.0]
    by_top1 = logistic_transfer(x[tr], y[tr], x[va], y[va], x[te], y[te], grid, "top1")
    by_mpc = logistic_transfer(x[tr], y[tr], x[va], y[va], x[te], y[te], grid, "mean_per_class")
    assert by_top1["score"] == by_top1["top1"] and by_mpc["score"] == by_mpc["mean_per_class"]
    assert by_mpc["metric"] == "mean_per_class" and set(by_mpc["val_score_by_c"]) == {str(c) for c in grid}
    # Each metric's selected C is the best on val by that metric (ties to the smaller C).
    for res in (by_top1, by_mpc):
        best = max(res["val_score_by_c"].values())
        assert res["val_score_by_c"][str(res["best_c"])] == best == res["val_score"]
    # The strongly regularised fit predicts the majority classes only: mean per-class punishes it.
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    s = StandardScaler().fit(x[tr])
    pred = LogisticRegression(C=1e-3, max_iter=2000).fit(s.transform(x[tr]), y[tr]).predict(s.transform(x[va]))
    assert by_mpc["val_score_by_c"]["0.001"] == pytest.approx(mean_per_class_accuracy(y[va], pred))
    assert by_mpc["val_score_by_c"]["0.001"] < by_top1["val_score_by_c"]["0.001"]


def test_refit_uses_train_and_val():
    # With a single C, the refit model equals a fit on train + val done by hand.
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = planted(400, seed=2, noise=2.0)
    res = logistic_transfer(x[:150], y[:150], x[150:250], y[150:250], x[250:], y[250:], [0.5])
    s = StandardScaler().fit(x[:250])
    ref = LogisticRegression(C=0.5, max_iter=2000).fit(s.transform(x[:250]), y[:250]).predict(s.transform(x[250:]))
    assert res["top1"] == pytest.approx(100 * (ref == y[250:]).mean())
    assert res["n_train"] == 150 and res["n_val"] == 100 and res["n_test"] == 150


def multilabel(n, seed=0, difficult=0.1):
    """Class c present when feature c is large; some present labels turned into -1 (difficult only)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = (x[:, :4] > 0.3).astype(np.int64)
    y[(rng.random(y.shape) < difficult) & (y == 1)] = -1
    return x, y


def test_multilabel_voc07_protocol():
    x, y = multilabel(600)
    res = logistic_transfer(x[:300], y[:300], x[300:400], y[300:400], x[400:], y[400:], [1e-4, 1.0], "voc07_map")
    assert res["metric"] == "voc07_map" and "top1" not in res
    assert res["score"] > 95.0 and res["best_c"] == 1.0  # separable: the weak regularisation wins on val
    # Pure-noise features score near the positive rate, far below.
    noise = np.random.default_rng(5).normal(size=x.shape)
    bad = logistic_transfer(noise[:300], y[:300], noise[300:400], y[300:400], noise[400:], y[400:], [1.0], "voc07_map")
    assert bad["score"] < 60.0
    with pytest.raises(DatasetError, match="multi-label"):
        logistic_transfer(x[:300], y[:300, 0], x[300:400], y[300:400, 0], x[400:], y[400:, 0], [1.0], "voc07_map")
    one_sided = y.copy()
    one_sided[:400, 2] = 0  # class 2 never positive in train or val: not learnt, reported, ranked by a constant
    res2 = logistic_transfer(x[:300], one_sided[:300], x[300:400], one_sided[300:400], x[400:], one_sided[400:],
                             [1.0], "voc07_map")
    assert res2["classes_not_learnt"] == [2] and res["classes_not_learnt"] == [] and res2["score"] < res["score"]


def test_difficult_only_images_are_left_out_of_their_class():
    from sklearn.linear_model import LogisticRegression

    from sempos.eval.transfer import _MultiLabel

    x, y = multilabel(200, seed=3, difficult=0.3)
    assert (y[:, 1] == -1).sum() > 10
    model = _MultiLabel(x, y, 1.0)
    keep = y[:, 1] != -1
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(x[keep], (y[keep, 1] == 1).astype(int))
    np.testing.assert_allclose(model.scores(x)[:, 1], ref.decision_function(x), rtol=1e-6, atol=1e-8)
    as_negative = _MultiLabel(x, np.where(y == -1, 0, y), 1.0)  # what counting them as negatives would give
    assert not np.allclose(as_negative.scores(x)[:, 1], model.scores(x)[:, 1])


def test_stratified_val_and_transfer_size():
    y = np.array([0] * 50 + [1] * 10 + [2] * 1)
    val = stratified_val(y, 0.2, 0)
    assert np.array_equal(val, stratified_val(y, 0.2, 0))
    assert np.bincount(y[val], minlength=3).tolist() == [10, 2, 0]  # a class with one image stays in train
    assert len(stratified_val(np.zeros((30, 4)), 0.2, 0)) == 6  # multi-label: a plain 20 %
    p = {"data": {"pretrain": "fmnist"}, "eval": {"transfer": {"image_size": None}}}
    assert transfer_image_size(p) == 28
    assert transfer_image_size({"data": {"pretrain": "stl10", "image_size": 96}, "eval": {"transfer": {}}}) == 96
    assert transfer_image_size({"data": {"pretrain": "cifar10"}, "eval": {"transfer": {"image_size": 224}}}) == 224


def write_metrics(root, protocol_dir, target, method, seed, score, metric):
    p = root / protocol_dir / target / "fmnist" / method / f"seed{seed}" / "metrics.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"method": method, "seed": seed, "target": target, "metric": metric, "score": score}))


def test_transfer_table_papers_layout_with_t_intervals(tmp_path):
    for seed, (a, b) in enumerate([(70.0, 40.0), (72.0, 44.0), (74.0, 42.0)]):
        write_metrics(tmp_path, "transfer", "voc2007", "simclr", seed, a, "voc07_map")
        write_metrics(tmp_path, "transfer", "food101", "simclr", seed, b, "top1")
    write_metrics(tmp_path, "transfer", "food101", "random_init", 0, 10.0, "top1")
    files = {"linear": sorted(tmp_path.glob("transfer/*/fmnist/*/seed*/metrics.json"))}
    df = transfer_table.table(transfer_table.collect(files["linear"]), ["random_init", "simclr", "absent"])
    # Columns in the papers' order (Food before VOC2007), rows in the methods' order, '–' where nothing ran.
    assert list(df.columns) == ["food101 (top-1)", "voc2007 (11-pt mAP)", "seeds"]
    assert list(df.index) == ["random_init", "simclr"]
    # 3 seeds: mean 72, sd 2, t_{0.975, 2} = 4.3027 -> half-width 4.3027 * 2 / sqrt(3) = 4.97
    assert df.loc["simclr", "voc2007 (11-pt mAP)"] == "72.00 ± 4.97"
    assert df.loc["random_init", "food101 (top-1)"] == "10.00" and df.loc["random_init", "voc2007 (11-pt mAP)"] == "–"
    assert df.loc["simclr", "seeds"] == 3
    written = {}
    lines = transfer_table.section(files, "fmnist", ["random_init", "simclr"], tmp_path / "tables",
                                   lambda d, stem, cap: written.setdefault(stem.name, (d, cap)))
    assert set(written) == {"transfer"} and "Student-t" in written["transfer"][1]
    assert any("72.00 ± 4.97" in ln for ln in lines)
    assert transfer_table.section({}, "fmnist", ["simclr"], tmp_path, None) == []
    assert isinstance(transfer_table.collect([]), pd.DataFrame)


def test_finetune_target_selects_on_val_by_metric_and_refits():
    from sempos.augment import Normalizer
    from sempos.eval.transfer_finetune import finetune_target
    from sempos.models.resnet import build_backbone

    torch.manual_seed(0)
    n, classes = 48, 3
    y = torch.arange(n) % classes
    x = (torch.rand(n, 3, 16, 16) * 60 + y.view(-1, 1, 1, 1) * 90).to(torch.uint8)  # RGB, class = brightness
    data = {"train_x": x, "train_y": y, "test_x": x[:12], "test_y": y[:12], "classes": ["a", "b", "c"],
            "splits": {"train": torch.arange(36), "val": torch.arange(36, 48)}}
    bb = build_backbone("resnet18_cifar", 4, 1)  # a grayscale backbone on RGB images: the adapter converts
    norm = Normalizer([0.5], [0.25], "cpu")
    cfg = {"recipe": "simclr", "epochs": 2, "lr_grid": [0.05, 0.1], "batch_size": 12}
    res = finetune_target(bb, norm, data, "mean_per_class", cfg, 0, "cpu")
    assert res["refit"] == "train+val" and res["n_train"] == 36 and res["n_val"] == 12
    assert [g["lr"] for g in res["grid"]] == [0.05, 0.1]
    best = max(g["val_score"] for g in res["grid"])
    assert res["selected"]["val_score"] == best and 0.0 <= res["score"] <= 100.0
    with pytest.raises(DatasetError, match="multi-label"):
        finetune_target(bb, norm, {**data, "train_y": torch.zeros(n, 3)}, "voc07_map", cfg, 0, "cpu")
