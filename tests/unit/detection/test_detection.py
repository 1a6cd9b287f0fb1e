"""Detection: proxy scenes, the torchvision C4 detector and its training/eval, the Detectron2 converter and
(when detectron2 is importable) the Detectron2 backend."""

import math
import pickle
import sys

import numpy as np
import pytest
import torch

from sempos.detection import convert, detectron2_backend as d2b
from sempos.detection.c4 import C4Body, build_c4_detector
from sempos.detection.errors import ConversionError, DetectionError, Detectron2Unavailable
from sempos.detection.scenes import make_scenes, proxy_scene_sets, tight_box
from sempos.detection.train import coco_metrics, lr_at, run_trial, run_trials, to_inputs, total_loss, \
    train_detector
from sempos.io import save_torch
from sempos.models.resnet import build_backbone

CLASSES = ["a", "b", "c", "d"]


@pytest.fixture(autouse=True)
def one_thread():
    """The width-4 detector's ops are tiny: a second intra-op thread only adds synchronisation, and on a busy
    2-core machine its spin-waits made these tests several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def item_bank(n=40, seed=0):
    """28x28 items on a zero background: a filled rectangle of random size/place/intensity per item, its
    class drawn at random; unlike real photos the true extent of every item is known exactly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    for i in range(n):
        h, w = torch.randint(8, 24, (2,), generator=g).tolist()
        y0, x0 = torch.randint(0, 28 - h + 1, (1,), generator=g).item(), torch.randint(0, 28 - w + 1, (1,), generator=g).item()
        x[i, 0, y0:y0 + h, x0:x0 + w] = torch.randint(60, 256, (h, w), generator=g).to(torch.uint8)
    return x, torch.randint(0, len(CLASSES), (n,), generator=g)


def payload(n_train=60, n_test=30):
    x, y = item_bank(n_train + n_test)
    return {"classes": CLASSES, "train_x": x[:n_train], "train_y": y[:n_train], "test_x": x[n_train:],
            "test_y": y[n_train:], "splits": {"train": torch.arange(n_train - 10)}}


def backbone_file(tmp_path, arch="resnet18_cifar", width=4, seed=0):
    torch.manual_seed(seed)
    bb = build_backbone(arch, width, 1)
    meta = {"arch": arch, "width": width, "in_channels": 1, "image_size": 28, "patch_size": None,
            "frozen_patch_embed": False, "feat_dim": bb.feat_dim, "norm_mean": [0.2], "norm_std": [0.3],
            "method": "test", "algo": "none", "seed": seed}
    path = tmp_path / f"{arch}_w{width}_backbone.pt"
    save_torch({"meta": meta, "state_dict": bb.state_dict()}, path)
    return path, meta


# 48 px scenes and few proposals/RoIs keep a training step of the width-4 proxy cheap on 2 cores.
SMALL_SCENES = {"canvas": 48, "scale": [0.8, 1.6]}
SMALL_MODEL = {"train_sizes": [48], "test_size": 48, "roi_batch_size_per_image": 32, "rpn_pre_nms_topk_train": 300,
               "rpn_post_nms_topk_train": 100, "rpn_pre_nms_topk_test": 200, "rpn_post_nms_topk_test": 50}
TINY = {"train_scenes": 16, "test_scenes": 8, "scenes": SMALL_SCENES, "model": SMALL_MODEL,
        "solver": {"iters": 4, "ims_per_batch": 2, "warmup_iters": 2, "steps": [3], "precise_bn_iters": 2,
                   "eval_batch": 8}}


# ---------------------------------------------------------------- scenes

def test_scenes_are_deterministic_and_boxes_tightly_contain_items():
    x, y = item_bank()
    a = make_scenes(x, y, CLASSES, 40, seed=3)
    b = make_scenes(x, y, CLASSES, 40, seed=3)
    c = make_scenes(x, y, CLASSES, 40, seed=4)
    assert torch.equal(a.images, b.images) and all(torch.equal(p, q) for p, q in zip(a.boxes, b.boxes))
    assert not torch.equal(a.images, c.images)
    counts = [len(bx) for bx in a.boxes]
    assert min(counts) >= 1 and max(counts) <= 3 and len(set(counts)) > 1
    for img, boxes, labels, src in zip(a.images, a.boxes, a.labels, a.sources):
        fg = img[0] > 0
        covered = torch.zeros_like(fg)
        for k, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
            inside = fg[y0:y1, x0:x1]
            # tight: every edge row/column of the box holds item pixels
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            assert tight_box(inside) == (0, 0, x1 - x0, y1 - y0)
            assert not covered[y0:y1, x0:x1].any()  # max_iou 0: boxes never share a pixel
            covered[y0:y1, x0:x1] = True
            assert labels[k] == y[src[k]]
        assert not (fg & ~covered).any()  # contains: no item pixel lies outside every box


def test_scene_annotations_in_coco_and_voc_form():
    x, y = item_bank()
    s = make_scenes(x, y, CLASSES, 10, seed=0, cfg={"canvas": 96, "max_iou": 0.2})
    coco = s.coco()
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4] and len(coco["images"]) == 10
    anns = coco["annotations"]
    assert len(anns) == sum(len(b) for b in s.boxes) and len({a["id"] for a in anns}) == len(anns)
    first = anns[0]
    bx = s.boxes[first["image_id"] - 1][0].tolist()
    assert first["bbox"] == [bx[0], bx[1], bx[2] - bx[0], bx[3] - bx[1]]
    assert first["area"] == first["bbox"][2] * first["bbox"][3] and first["iscrowd"] == 0
    assert first["category_id"] == int(s.labels[first["image_id"] - 1][0]) + 1
    voc = s.voc()
    o = voc[0]["objects"][0]
    b0 = s.boxes[0][0].tolist()
    assert o["bbox"] == {"xmin": b0[0] + 1, "ymin": b0[1] + 1, "xmax": b0[2], "ymax": b0[3]}  # 1-based inclusive
    assert o["name"] == CLASSES[int(s.labels[0][0])] and voc[0]["width"] == 96
    with pytest.raises(DetectionError, match="canvas"):
        make_scenes(x, y, CLASSES, 1, seed=0, cfg={"canvas": 32})
    with pytest.raises(DetectionError, match="unknown"):
        make_scenes(x, y, CLASSES, 1, seed=0, cfg={"canvass": 64})
    train, test = proxy_scene_sets(payload(), 5, 4, seed=0)
    assert len(train) == 5 and len(test) == 4 and int(max(torch.cat(train.sources))) < 50  # val items excluded


# ---------------------------------------------------------------- converter

@pytest.mark.parametrize("arch,width", [("resnet50", 64), ("resnet18", 64), ("resnet18_cifar", 8)])
def test_converter_maps_every_parameter_and_buffer(arch, width):
    state = build_backbone(arch, width, 3).state_dict()
    for nbt in (True, False):
        out = convert.convert_state_dict(state, num_batches_tracked=nbt)
        assert set(out) == convert.expected_detectron2_keys(arch, nbt)  # no missing, no unexpected
    out = convert.convert_state_dict(state)
    assert np.array_equal(out["stem.conv1.weight"], state["conv1.weight"].numpy())
    assert np.array_equal(out["stem.conv1.norm.running_var"], state["bn1.running_var"].numpy())
    assert np.array_equal(out["res5.1.conv2.norm.bias"], state["layer4.1.bn2.bias"].numpy())
    assert np.array_equal(out["res3.0.shortcut.norm.running_mean"], state["layer2.0.downsample.1.running_mean"].numpy())


def test_converter_names_files_and_errors(tmp_path):
    assert convert.detectron2_name("layer1.0.downsample.0.weight") == "res2.0.shortcut.weight"
    assert convert.detectron2_name("layer3.5.bn3.weight") == "res4.5.conv3.norm.weight"
    assert convert.detectron2_name("bn1.running_mean") == "stem.conv1.norm.running_mean"
    path, _ = backbone_file(tmp_path)
    model = convert.convert_checkpoint(path, tmp_path / "out.pkl")
    with open(tmp_path / "out.pkl", "rb") as f:
        blob = pickle.load(f)
    assert blob["__author__"] == "sempos" and blob["matching_heuristics"] is True
    assert set(blob["model"]) == set(model) == convert.expected_detectron2_keys("resnet18_cifar")
    assert convert.convert_state_dict({"fc.weight": torch.zeros(1)}) == {}  # a classifier head is dropped
    with pytest.raises(ConversionError, match="cannot map"):
        convert.convert_state_dict({"blocks.0.attn.qkv.weight": torch.zeros(1)})


# ---------------------------------------------------------------- torchvision C4 detector

def test_c4_layout_strides_and_freezing():
    assert C4Body(build_backbone("resnet18_cifar", 4, 1)).stride == 4
    assert C4Body(build_backbone("resnet18", 8, 1)).stride == 16
    body = C4Body(build_backbone("resnet50", 8, 3))
    assert body.stride == 16 and body.out_channels == 8 * 4 * 4
    m = build_c4_detector(build_backbone("resnet18_cifar", 4, 1), [0.2], [0.3], 4, {"freeze_at": 2})
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert "backbone.conv1.weight" in frozen and "backbone.layer1.0.conv1.weight" in frozen
    assert "backbone.layer2.0.conv1.weight" not in frozen
    assert "roi_heads.box_head.layer4.0.conv1.weight" in dict(m.named_parameters())  # res5 is the box head
    assert type(m.backbone.layer1[0].bn1).__name__ == "FrozenBatchNorm2d"
    frozen_all = build_c4_detector(build_backbone("resnet18_cifar", 4, 1), [0.2], [0.3], 4, {"norm": "frozen"})
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in frozen_all.modules())
    with pytest.raises(DetectionError, match="ResNet"):
        build_c4_detector(torch.nn.Linear(2, 2), [0.2], [0.3], 4)


def test_c4_detector_loads_the_pretrained_backbone(tmp_path):
    from sempos.detection.c4 import c4_from_checkpoint

    path, _ = backbone_file(tmp_path)
    model, meta = c4_from_checkpoint(path, len(CLASSES))
    state = torch.load(path, weights_only=False)["state_dict"]
    assert torch.equal(model.backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert torch.equal(model.roi_heads.box_head.layer4[0].bn1.running_var, state["layer4.0.bn1.running_var"])
    assert model.transform.image_mean == pytest.approx([0.2]) and meta["arch"] == "resnet18_cifar"


def test_lr_schedule_matches_detectron2():
    solver = {"lr": 0.02, "warmup_iters": 100, "warmup_factor": 0.001, "steps": [18000, 22000], "gamma": 0.1}
    assert lr_at(0, solver) == pytest.approx(0.02 * 0.001)
    assert lr_at(50, solver) == pytest.approx(0.02 * (0.001 * 0.5 + 0.5))
    assert lr_at(100, solver) == pytest.approx(0.02)
    assert lr_at(18000, solver) == pytest.approx(0.002) and lr_at(23999, solver) == pytest.approx(0.0002)


def test_coco_metrics_perfect_and_empty():
    x, y = item_bank()
    s = make_scenes(x, y, CLASSES, 6, seed=0)
    gt = s.coco()
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"]]
    m = coco_metrics(gt, perfect)
    assert m["AP"] == pytest.approx(100) and m["AP50"] == pytest.approx(100) and m["APl"] == -1.0
    assert coco_metrics(gt, [])["AP"] == 0.0


def test_loss_drops_on_a_fixed_batch():
    x, y = item_bank()
    scenes = make_scenes(x, y, CLASSES, 4, seed=1, cfg=SMALL_SCENES)
    torch.manual_seed(0)
    model = build_c4_detector(build_backbone("resnet18_cifar", 4, 1), [0.2], [0.3], len(CLASSES), SMALL_MODEL)

    def loss_now():
        torch.manual_seed(123)  # same RPN/RoI sampling for both measurements
        with torch.no_grad():
            return float(total_loss(model.train(), *to_inputs(scenes, range(4), 1))[0])

    before = loss_now()
    solver = {"iters": 15, "ims_per_batch": 4, "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4,
              "weight_decay_norm": 0.0, "warmup_iters": 5, "warmup_factor": 0.1, "steps": [], "gamma": 0.1,
              "flip_p": 0.0}
    history = train_detector(model, scenes, solver, seed=0, log_every=0)
    after = loss_now()
    assert math.isfinite(before) and after < 0.8 * before, (before, after)
    assert len(history) == 15 and history[-1]["loss"] < history[0]["loss"]


def test_trials_give_coco_aps_and_are_deterministic(tmp_path):
    path, _ = backbone_file(tmp_path)
    res = run_trials(path, TINY, seeds=[0, 1], data=payload(), out_dir=tmp_path / "det")
    assert set(res["per_seed"]) == {"0", "1"} and res["n_trials"] == 2
    for trial in res["per_seed"].values():
        for k in ("AP", "AP50", "AP75", "APs", "APm"):
            v = trial[k]
            assert math.isfinite(v) and (0.0 <= v <= 100.0 or v == -1.0), (k, v)
        # 48 px canvases hold no object of COCO's large range (area > 96^2): COCOeval's -1 is kept as -1.
        assert trial["APl"] == -1.0
    per_seed = [res["per_seed"][s] for s in ("0", "1")]
    for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        vals = np.array([t[k] for t in per_seed])
        assert res["mean"][k] == pytest.approx(vals.mean()) and res["std"][k] == pytest.approx(vals.std(ddof=1))
    import json

    assert json.loads((tmp_path / "det" / "metrics.json").read_text()) == json.loads(json.dumps(res))
    history = json.loads((tmp_path / "det" / "history.json").read_text())
    assert set(history) == {"0", "1"} and history["0"][-1]["loss"] == pytest.approx(res["per_seed"]["0"]["final_loss"])
    # Same seed, same scenes: the same numbers and the same loss curve.
    train, test = proxy_scene_sets(payload(), 16, 8, seed=0, cfg=SMALL_SCENES)
    again = run_trial(path, TINY, 0, train, test)
    assert {k: again[k] for k in ("AP", "AP50", "AP75", "final_loss")} == \
        {k: res["per_seed"]["0"][k] for k in ("AP", "AP50", "AP75", "final_loss")}
    with pytest.raises(DetectionError, match="unknown"):
        run_trials(path, {"solver": {"iterations": 3}}, seeds=[0], data=payload())


# ---------------------------------------------------------------- Detectron2 backend

def test_detectron2_missing_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "detectron2", None)  # what an absent package looks like to import
    assert not d2b.available()
    with pytest.raises(Detectron2Unavailable) as err:
        d2b.build_cfg({})
    msg = str(err.value)
    assert "--no-build-isolation" in msg and "backend: torchvision" in msg
    with pytest.raises(DetectionError, match="unknown detection.detectron2"):
        d2b.d2_settings({"max_iters": 5})
    nan = float("nan")
    assert d2b.coco_convention({"AP": nan, "AP50": nan}) == {"AP": 0.0, "AP50": 0.0}  # nothing predicted
    assert d2b.coco_convention({"AP": 5.0, "APl": nan}) == {"AP": 5.0, "APl": -1.0}  # no large objects


def test_detectron2_config_follows_moco_voc():
    pytest.importorskip("detectron2")
    cfg = d2b.build_cfg({})
    assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm" and cfg.MODEL.RESNETS.NORM == "naiveSyncBN"
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 0 and cfg.TEST.PRECISE_BN.ENABLED and not cfg.MODEL.RESNETS.STRIDE_IN_1X1
    assert cfg.SOLVER.BASE_LR == 0.02 and cfg.SOLVER.MAX_ITER == 24000 and tuple(cfg.SOLVER.STEPS) == (18000, 22000)
    assert cfg.SOLVER.WARMUP_ITERS == 100 and cfg.SOLVER.IMS_PER_BATCH == 16
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == tuple(range(480, 801, 32)) and cfg.INPUT.MIN_SIZE_TEST == 800
    assert tuple(cfg.DATASETS.TRAIN) == ("voc_2007_trainval", "voc_2012_trainval")
    assert tuple(cfg.DATASETS.TEST) == ("voc_2007_test",) and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 20
    over = d2b.build_cfg({"max_iter": 10, "steps": [5], "opts": {"MODEL.ANCHOR_GENERATOR.SIZES": [[16, 32]]}})
    assert over.SOLVER.MAX_ITER == 10 and tuple(over.SOLVER.STEPS) == (5,)
    assert [list(s) for s in over.MODEL.ANCHOR_GENERATOR.SIZES] == [[16, 32]]


@pytest.mark.parametrize("arch,depth,norm", [("resnet50", 50, "naiveSyncBN"), ("resnet50", 50, "FrozenBN"),
                                              ("resnet18", 18, "BN")])
def test_converted_weights_load_into_a_detectron2_resnet(arch, depth, norm):
    pytest.importorskip("detectron2")
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.NORM = depth, norm
    cfg.MODEL.RESNETS.OUT_FEATURES, cfg.MODEL.BACKBONE.FREEZE_AT = ["res5"], 0
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 256 if depth == 50 else 64
    d2 = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    ours = build_backbone(arch, 64, 3)
    converted = convert.convert_state_dict(ours.state_dict(), num_batches_tracked=norm != "FrozenBN")
    result = d2.load_state_dict({k: torch.as_tensor(v) for k, v in converted.items()}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(d2.res4[-1].conv1.weight, ours.layer3[-1].conv1.weight)


def test_detectron2_c4_loads_a_narrow_grayscale_r50(tmp_path):
    pytest.importorskip("detectron2")
    path, meta = backbone_file(tmp_path, "resnet50", width=8)
    convert.convert_checkpoint(path, tmp_path / "w.pkl")
    report = d2b.load_report(tmp_path / "w.pkl", {"num_classes": 4}, meta)
    assert report == {"missing": [], "unused": [], "loaded": report["loaded"]} and report["loaded"] == 318
    with pytest.raises(DetectionError, match="torchvision"):
        d2b.build_cfg({}, {**meta, "arch": "resnet18_cifar"})


def test_detectron2_trains_and_scores_proxy_scenes(tmp_path):
    pytest.importorskip("detectron2")
    path, _ = backbone_file(tmp_path, "resnet50", width=8)
    cfg = {"train_scenes": 8, "test_scenes": 4, "scenes": {"canvas": 64},
           "detectron2": {"train_datasets": ["sempos_proxy_train"], "test_datasets": ["sempos_proxy_test"],
                          "num_classes": 4, "device": "cpu", "num_workers": 0, "ims_per_batch": 2, "max_iter": 2,
                          "steps": [], "warmup_iters": 1, "min_size_train": [64], "min_size_test": 64,
                          "precise_bn_iters": 1, "rpn_pre_nms_topk_test": 200, "rpn_post_nms_topk_test": 50,
                          "opts": {"MODEL.ANCHOR_GENERATOR.SIZES": [[16, 32, 64]],
                                   "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 32}}}
    res = d2b.run_trials(path, cfg, seeds=[0], out_dir=tmp_path / "d2", data=payload())
    ap = res["per_seed"]["0"]["AP"]
    assert res["backend"] == "detectron2" and 0.0 <= ap <= 100.0 and res["per_seed"]["0"]["APl"] == -1.0
