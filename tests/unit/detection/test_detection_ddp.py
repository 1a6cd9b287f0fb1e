"""The torchvision detector under DDP (two gloo processes on CPU, as torchrun would start them): every rank takes
half of each batch, weights stay identical on both ranks, and the test images are split between the ranks and
gathered into one set of detections, scored once. (SyncBatchNorm needs GPUs: on CPU ranks keep their own BN.)"""

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sempos.detection.c4 import build_c4_detector
from sempos.detection.scenes import make_scenes
from sempos.detection.train import predict, run_trials, train_detector
from sempos.io import save_torch
from sempos.models.resnet import build_backbone

WORLD = 2
CLASSES = ["a", "b"]
MODEL = {"train_sizes": [48], "test_size": 48, "roi_batch_size_per_image": 16, "rpn_pre_nms_topk_train": 200,
         "rpn_post_nms_topk_train": 50, "rpn_pre_nms_topk_test": 100, "rpn_post_nms_topk_test": 30}
SOLVER = {"iters": 2, "ims_per_batch": 4, "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4, "weight_decay_norm": 0.0,
          "warmup_iters": 1, "warmup_factor": 0.1, "steps": [], "gamma": 0.1, "flip_p": 0.5, "chunk": 0, "workers": 0}


def _items(n=24):
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    for i in range(n):
        x[i, 0, 4:20, 6:22] = torch.randint(80, 255, (16, 16), generator=g).to(torch.uint8)
    return x, torch.arange(n) % 2


def _payload():
    x, y = _items()
    return {"classes": CLASSES, "train_x": x[:16], "train_y": y[:16], "test_x": x[16:], "test_y": y[16:]}


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    x, y = _items()
    scenes = make_scenes(x, y, CLASSES, 8, seed=1, cfg={"canvas": 48})
    torch.manual_seed(0)
    model = build_c4_detector(build_backbone("resnet18_cifar", 4, 1), [0.2], [0.3], 2, MODEL)
    history = train_detector(model, scenes, SOLVER, seed=0, log_every=0, sync_bn=True)
    dets = predict(model, scenes, batch=3)
    res = run_trials(Path(out_dir) / "bb.pt", {"train_scenes": 8, "test_scenes": 5, "scenes": {"canvas": 48},
                                               "model": MODEL, "solver": {**SOLVER, "precise_bn_iters": 1}},
                     [0], data=_payload(), out_dir=Path(out_dir) / "det", sync_bn=True)
    # Parameters, not BN running statistics: those are per rank until PreciseBN averages them (run_trials).
    torch.save({"state": {k: v.detach().clone() for k, v in model.named_parameters()}, "history": history,
                "dets": dets,
                "syncbn": sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules()),
                "ap": res["per_seed"]["0"]["AP50"]}, Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp_det")
    torch.manual_seed(0)
    bb = build_backbone("resnet18_cifar", 4, 1)
    meta = {"arch": "resnet18_cifar", "width": 4, "in_channels": 1, "image_size": 28, "norm_mean": [0.2],
            "norm_std": [0.3], "method": "t", "feat_dim": bb.feat_dim}
    save_torch({"meta": meta, "state_dict": bb.state_dict()}, tmp / "bb.pt")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return tmp, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.slow
def test_ddp_ranks_agree_and_detections_are_gathered(ranks):
    tmp, (r0, r1) = ranks
    assert r0["syncbn"] == 0  # sync_bn asked for, but SyncBatchNorm is GPU-only: CPU ranks keep BatchNorm
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k  # DDP kept the replicas identical
    assert [h["loss"] for h in r0["history"]] == [h["loss"] for h in r1["history"]]  # the loss averaged over ranks
    # Each rank predicted half of the 8 images; both hold the gathered set, covering every image with detections.
    assert r0["dets"] == r1["dets"] and r0["ap"] == r1["ap"]
    # Only rank 0 writes the results.
    m = json.loads((tmp / "det" / "metrics.json").read_text())
    assert m["per_seed"]["0"]["AP50"] == r0["ap"] and m["n_trials"] == 1
