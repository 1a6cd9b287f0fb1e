"""Detection on a fake PASCAL VOC (VOC07+12 trainval -> VOC07 test, XML boxes with difficult flags) through the
real prepare and detect stage commands, a few iterations of the torchvision C4 detector."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import fake_pretrained, fake_voc_archives, place_downloaded_files

from sempos.config import load_params
from sempos.detection.train import load_batches
from sempos.detection.voc import VOCBoxes
from sempos.io import save_torch
from sempos.models.resnet import build_backbone
from sempos.pipeline import dvc_yaml
from sempos.stages import detect, prepare
from sempos.stages.common import run_stage

REPO = Path(__file__).resolve().parents[3]
TINY_VOC = {"dataset": "voc0712", "backend": "torchvision", "methods": ["random_init"], "trials": [0, 1],
            "model": {"train_sizes": [40, 48], "test_size": 48, "anchor_sizes": [16, 32],
                      "roi_batch_size_per_image": 32, "rpn_pre_nms_topk_train": 300, "rpn_post_nms_topk_train": 100,
                      "rpn_pre_nms_topk_test": 200, "rpn_post_nms_topk_test": 50},
            "solver": {"iters": 3, "ims_per_batch": 4, "chunk": 2, "warmup_iters": 1, "steps": [2],
                       "precise_bn_iters": 1, "eval_batch": 4}}


@pytest.fixture
def voc_workdir(tmp_path, monkeypatch):
    files, truth = fake_voc_archives(n_trainval07=10, n_test07=6, n_trainval12=6)
    place_downloaded_files(tmp_path / "data" / "raw" / "voc0712", files)
    params = load_params(REPO / "params.yaml", [REPO / "config" / "voc.yaml"])
    params["runtime"].update(device="cpu", threads=1, precision="fp32", gpus_per_job=0, progress=False)
    params["eval"]["detection"] = TINY_VOC
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    fake_pretrained(load_params("params.yaml"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path, truth
    torch.set_num_threads(before)


def run(module, name, wildcards, **values):
    argv = ["--params", "params.yaml"] + [a for k in wildcards for a in (f"--{k}", str(values[k]))]
    assert run_stage(name, wildcards, module.body, argv) == 0


def test_voc_detection_through_the_stages(voc_workdir):
    _, truth = voc_workdir
    run(prepare, "prepare", ("ds",), ds="voc0712")
    run(detect, "detect", ("ds", "method", "seed"), ds="fmnist", method="random_init", seed=0)
    m = json.loads(Path("results/detect/fmnist/random_init/seed0/metrics.json").read_text())
    assert m["dataset"] == "voc0712" and m["backend"] == "torchvision" and m["n_trials"] == 2
    assert m["images"] == {"train": 16, "test": 6}  # VOC07 trainval + VOC12 trainval -> VOC07 test
    for trial in m["per_seed"].values():
        for k in ("AP", "AP50", "AP75", "coco_AP", "coco_AP50", "coco_AP75"):
            assert 0.0 <= trial[k] <= 100.0, (k, trial[k])
        assert len(trial["AP50_per_class"]) == len({o["cls"] for objs in truth["2007 test"].values() for o in objs
                                                    if not o["difficult"]})
    assert set(m["mean"]) >= {"AP", "AP50", "AP75", "coco_AP50"} and set(m["std"]) == set(m["mean"])
    assert len(json.loads(Path("results/detect/fmnist/random_init/seed0/history.json").read_text())["0"]) == 3


def test_voc_images_decode_the_same_in_workers(voc_workdir):
    run(prepare, "prepare", ("ds",), ds="voc0712")
    index = torch.load("data/prepared/voc0712.pt", weights_only=False)
    boxes = VOCBoxes.from_index(index, ["voc_2007_trainval"], max_images=4)
    plan = [([0, 1], [False, True]), ([3, 2], [True, False])]
    here = list(load_batches(boxes, plan, 3, workers=0))
    there = list(load_batches(boxes, plan, 3, workers=2))
    for a, b in zip(here, there):
        for (xa, ba, la), (xb, bb, lb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ba, bb) and torch.equal(la, lb)
    x, b, _ = here[0][1]  # flipped: boxes mirror in the image's own width
    x0, b0, _ = boxes.load(1, False, 3)
    assert torch.equal(x, x0.flip(-1)) and torch.allclose(b[:, 0], x0.shape[-1] - b0[:, 2])


def test_voc_overlay_is_moco_and_in_the_dag():
    p = load_params(REPO / "params.yaml", [REPO / "config" / "voc.yaml"])
    det = p["eval"]["detection"]
    assert det["dataset"] == "voc0712" and len(det["trials"]) == 5
    assert det["model"]["train_sizes"] == list(range(480, 801, 32)) and det["model"]["test_size"] == 800
    assert det["solver"]["iters"] == 24000 and det["solver"]["steps"] == [18000, 22000]
    assert det["solver"]["ims_per_batch"] == 16 and det["solver"]["lr"] == 0.02
    assert det["voc"]["train_sets"] == ["voc_2007_trainval", "voc_2012_trainval"]
    stages = dvc_yaml(p)["stages"]
    assert "download-voc0712" in stages and "prepare-voc0712" in stages
    assert "data/prepared/voc0712.pt" in stages["detect-fmnist-simclr-seed0"]["deps"]
    # The ImageNet overlay detects on voc0712 with Detectron2; voc.yaml on top keeps that backend.
    both = load_params(REPO / "params.yaml", [REPO / "config" / "imagenet.yaml", REPO / "config" / "voc.yaml"])
    det = both["eval"]["detection"]
    assert det["dataset"] == "voc0712" and det["backend"] == "detectron2" and det["solver"]["iters"] == 24000
    assert "prepare-voc0712" in dvc_yaml(both)["stages"]


@pytest.mark.skipif("not __import__('sempos.detection.detectron2_backend', fromlist=['x']).available()",
                    reason="detectron2 (with detectron2._C) is not installed")
def test_detectron2_backend_on_voc_through_the_stages(voc_workdir):
    """Detectron2's VOC loader and PascalVOCDetectionEvaluator read the devkit folders the prepared index names."""
    tmp, _ = voc_workdir
    torch.manual_seed(0)
    bb = build_backbone("resnet50", 8, 3)
    meta = {"arch": "resnet50", "width": 8, "in_channels": 3, "image_size": 32, "patch_size": None,
            "frozen_patch_embed": False, "feat_dim": bb.feat_dim, "norm_mean": [0.4, 0.4, 0.4],
            "norm_std": [0.25, 0.25, 0.25], "method": "random_init", "algo": "none", "seed": 0}
    save_torch({"meta": meta, "state_dict": bb.state_dict()}, tmp / "runs/fmnist/random_init/seed0/backbone.pt")
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["eval"]["detection"] = {
        "dataset": "voc0712", "backend": "detectron2", "methods": ["random_init"], "trials": [0],
        "detectron2": {"device": "cpu", "num_workers": 0, "ims_per_batch": 2, "max_iter": 2, "steps": [],
                       "warmup_iters": 1, "min_size_train": [48], "min_size_test": 48, "precise_bn_iters": 1,
                       "rpn_pre_nms_topk_test": 200, "rpn_post_nms_topk_test": 50,
                       "opts": {"MODEL.ANCHOR_GENERATOR.SIZES": [[16, 32, 64]],
                                "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 32}}}
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(prepare, "prepare", ("ds",), ds="voc0712")
    run(detect, "detect", ("ds", "method", "seed"), ds="fmnist", method="random_init", seed=0)
    m = json.loads(Path("results/detect/fmnist/random_init/seed0/metrics.json").read_text())
    trial = m["per_seed"]["0"]
    assert m["backend"] == "detectron2" and m["dataset"] == "voc0712"
    for k in ("AP", "AP50", "AP75", "coco_AP50", "d2_AP50"):
        assert 0.0 <= trial[k] <= 100.0, (k, trial[k])
    assert trial["detections"] == len(json.loads(
        Path("results/detect/fmnist/random_init/seed0/trial0/detections_voc_2007_test.json").read_text()))
