"""The real thing: MoCo's VOC Faster R-CNN R50-C4 in Detectron2, its config built in code (docs/science.md §4.5).

Sources: MoCo's detection/configs/Base-RCNN-C4-BN.yaml + pascal_voc_R_50_C4_24k(_moco).yaml and its
train_net.py (Res5ROIHeadsExtraNorm, the evaluator choice). Every value is a key of `VOC_R50_C4` that
`detection.detectron2` may override; `opts` takes any other Detectron2 key ({"MODEL.X.Y": value}).

Detectron2 is optional and imported only inside these functions: without it, every function that needs it
raises Detectron2Unavailable, which names the fix. Its Res5ROIHeads always builds a bottleneck res5, so only
resnet50 backbones (any width) fit; the narrow ResNet-18 proxies use the torchvision backend.

Dataset sources: the prepared voc0712 index (detection.dataset: voc0712; its VOC2007/VOC2012 devkit folders are
registered under Detectron2's names), VOC under `datasets_root` (the DETECTRON2_DATASETS layout), or the proxy
scenes (names starting with `sempos_proxy`), written as PNGs and registered here.

Metrics: every detection on the test set is collected and scored by sempos.detection.evaluate, exactly as the
torchvision backend's (AP/AP50/AP75 by the VOC devkit's rules, coco_* by pycocotools); Detectron2's own
evaluator (PascalVOCDetectionEvaluator for VOC, COCOEvaluator for the proxy) runs on the same detections and
is kept as d2_AP/d2_AP50/d2_AP75 for comparison.

Several GPUs: under torchrun (sempos.launch with runtime.gpus_per_job > 1) every rank joins one Detectron2
DDP run; otherwise `num_gpus` > 1 spawns workers with detectron2.engine.launch. `norm: SyncBN` then
synchronises BN statistics across GPUs, as MoCo's configs do.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

from ..io import load_torch, save_json
from .convert import convert_checkpoint
from .errors import DetectionError, Detectron2Unavailable
from .train import settings as detection_settings
from .train import summarize

log = logging.getLogger(__name__)

VOC_R50_C4: dict = {
    "roi_heads": "Res5ROIHeadsExtraNorm",   # MoCo: res5 + an extra norm layer (Res5ROIHeads without it)
    "norm": "SyncBN",                       # MoCo's Base-RCNN-C4-BN.yaml: "Fine-tune with SyncBN"
    "freeze_at": 0,
    "stride_in_1x1": False,                 # torchvision-style bottlenecks stride in the 3x3 conv
    "precise_bn": True,
    "precise_bn_iters": 200,
    "num_classes": 20,
    "ims_per_batch": 16,
    "base_lr": 0.02,
    "max_iter": 24000,
    "steps": [18000, 22000],
    "warmup_iters": 100,
    "min_size_train": list(range(480, 801, 32)),
    "max_size_train": 1333,
    "min_size_test": 800,
    "max_size_test": 1333,
    "train_datasets": ["voc_2007_trainval", "voc_2012_trainval"],
    "test_datasets": ["voc_2007_test"],
    "rpn_pre_nms_topk_test": 6000,
    "rpn_post_nms_topk_test": 1000,
    "pixel_mean": None,    # None: the backbone's pretraining mean x 255 (MoCo: ImageNet's, the same thing)
    "pixel_std": None,     # None: the backbone's pretraining std x 255
    "input_format": None,  # None: RGB for 3-channel backbones, L for 1-channel ones
    "device": "cuda",
    "num_gpus": 1,         # > 1 spawns workers with detectron2.engine.launch (DDP)
    "num_workers": 4,
    "checkpoint_period": 5000,
    "eval_period": 0,      # 0: evaluate once, after the last iteration
    "datasets_root": None,  # where VOC2007/ and VOC2012/ live (DETECTRON2_DATASETS); None: ./datasets
    "opts": {},            # any other Detectron2 key, e.g. {"MODEL.ANCHOR_GENERATOR.SIZES": [[16, 32, 64]]}
}
# Our keys -> Detectron2 config keys (the rest are handled in build_cfg).
D2_KEYS = {
    "roi_heads": "MODEL.ROI_HEADS.NAME", "norm": "MODEL.RESNETS.NORM", "freeze_at": "MODEL.BACKBONE.FREEZE_AT",
    "stride_in_1x1": "MODEL.RESNETS.STRIDE_IN_1X1", "precise_bn": "TEST.PRECISE_BN.ENABLED",
    "precise_bn_iters": "TEST.PRECISE_BN.NUM_ITER", "num_classes": "MODEL.ROI_HEADS.NUM_CLASSES",
    "ims_per_batch": "SOLVER.IMS_PER_BATCH", "base_lr": "SOLVER.BASE_LR", "max_iter": "SOLVER.MAX_ITER",
    "steps": "SOLVER.STEPS", "warmup_iters": "SOLVER.WARMUP_ITERS", "min_size_train": "INPUT.MIN_SIZE_TRAIN",
    "max_size_train": "INPUT.MAX_SIZE_TRAIN", "min_size_test": "INPUT.MIN_SIZE_TEST",
    "max_size_test": "INPUT.MAX_SIZE_TEST", "train_datasets": "DATASETS.TRAIN", "test_datasets": "DATASETS.TEST",
    "rpn_pre_nms_topk_test": "MODEL.RPN.PRE_NMS_TOPK_TEST", "rpn_post_nms_topk_test": "MODEL.RPN.POST_NMS_TOPK_TEST",
    "device": "MODEL.DEVICE", "num_workers": "DATALOADER.NUM_WORKERS",
    "checkpoint_period": "SOLVER.CHECKPOINT_PERIOD", "eval_period": "TEST.EVAL_PERIOD",
}
TUPLES = {"min_size_train", "steps", "train_datasets", "test_datasets"}  # Detectron2 holds these as tuples
PROXY_PREFIX = "sempos_proxy"
VOC_SPLITS = {"voc_2007_trainval": ("VOC2007", "trainval"), "voc_2007_train": ("VOC2007", "train"),
              "voc_2007_val": ("VOC2007", "val"), "voc_2007_test": ("VOC2007", "test"),
              "voc_2012_trainval": ("VOC2012", "trainval"), "voc_2012_train": ("VOC2012", "train"),
              "voc_2012_val": ("VOC2012", "val")}


def available() -> bool:
    try:
        _require()
    except Detectron2Unavailable:
        return False
    return True


def _require():
    try:
        import detectron2  # noqa: F401
        from detectron2 import _C  # noqa: F401  (a source checkout without the built extension fails here)
    except Exception as exc:  # ImportError, or an extension built against another torch
        raise Detectron2Unavailable(exc) from exc
    return detectron2


def d2_settings(cfg: Mapping | None = None) -> dict:
    """VOC_R50_C4 overlaid with `cfg` (the `detection.detectron2` section); unknown keys raise."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(VOC_R50_C4))
    if unknown:
        raise DetectionError(f"unknown detection.detectron2 setting(s) {unknown}; known: {sorted(VOC_R50_C4)} "
                             f"(any other Detectron2 key goes under detection.detectron2.opts)")
    return {**VOC_R50_C4, **cfg, "opts": dict(cfg.get("opts") or {})}


def register_extra_norm_heads() -> str:
    """Register MoCo's Res5ROIHeadsExtraNorm (once per process); returns its registry name."""
    _require()
    from detectron2.layers import get_norm
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads

    name = "Res5ROIHeadsExtraNorm"
    if name in ROI_HEADS_REGISTRY:
        return name

    class Res5ROIHeadsExtraNorm(Res5ROIHeads):
        """MoCo's train_net.py: as in the MoCo paper, an extra norm layer follows the res5 stage."""

        def __init__(self, cfg, input_shape):
            super().__init__(cfg, input_shape)
            self.res5.add_module("norm", get_norm(cfg.MODEL.RESNETS.NORM, self.res5[-1].out_channels))

    ROI_HEADS_REGISTRY.register(Res5ROIHeadsExtraNorm)
    return name


def _backbone_shape(meta: Mapping) -> dict:
    """Detectron2 ResNet sizes for our checkpoint's arch/width; only bottleneck R50s fit Res5ROIHeads."""
    if meta.get("arch") != "resnet50":
        raise DetectionError(f"the detectron2 backend runs R50-C4 (Res5ROIHeads always builds a bottleneck res5) "
                             f"but the backbone is {meta.get('arch')!r}; set detection.backend: torchvision for "
                             f"resnet18/resnet18_cifar backbones")
    width = int(meta.get("width", 64))
    return {"MODEL.RESNETS.DEPTH": 50, "MODEL.RESNETS.STEM_OUT_CHANNELS": width,
            "MODEL.RESNETS.WIDTH_PER_GROUP": width, "MODEL.RESNETS.NUM_GROUPS": 1,
            "MODEL.RESNETS.RES2_OUT_CHANNELS": 4 * width}


def build_cfg(settings: Mapping | None = None, meta: Mapping | None = None, weights: str | Path | None = None,
              output_dir: str | Path | None = None, seed: int | None = None):
    """A frozen Detectron2 CfgNode for MoCo's VOC R50-C4 recipe with `settings` applied.

    meta: the backbone.pt meta (arch, width, in_channels, norm_mean/std) that sizes the ResNet and the
    pixel statistics; None keeps Detectron2's standard R50 and MoCo's ImageNet mean/std.
    """
    _require()
    from detectron2.config import get_cfg

    s = d2_settings(settings)
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"   # Base-RCNN-C4: res4 features for RPN and RoI heads
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.RESNETS.DEPTH = 50
    if s["roi_heads"] == "Res5ROIHeadsExtraNorm":
        register_extra_norm_heads()
    pairs: dict = {v: s[k] for k, v in D2_KEYS.items()}
    pairs.update({D2_KEYS[k]: tuple(s[k]) for k in TUPLES})
    if meta is not None:
        pairs.update(_backbone_shape(meta))
        channels = int(meta.get("in_channels", 3))
        mean = [255.0 * float(m) for m in meta["norm_mean"]]
        std = [255.0 * float(v) for v in meta["norm_std"]]
    else:
        channels, mean, std = 3, [123.675, 116.280, 103.530], [58.395, 57.120, 57.375]
    mean = list(s["pixel_mean"]) if s["pixel_mean"] is not None else mean
    std = list(s["pixel_std"]) if s["pixel_std"] is not None else std
    if not len(mean) == len(std) == channels:
        raise DetectionError(f"pixel_mean/pixel_std have {len(mean)}/{len(std)} values but the backbone takes "
                             f"{channels} channels")
    pairs["MODEL.PIXEL_MEAN"], pairs["MODEL.PIXEL_STD"] = mean, std
    pairs["INPUT.FORMAT"] = s["input_format"] or ("L" if channels == 1 else "RGB")
    if weights is not None:
        pairs["MODEL.WEIGHTS"] = str(weights)
    if output_dir is not None:
        pairs["OUTPUT_DIR"] = str(output_dir)
    if seed is not None:
        pairs["SEED"] = int(seed)
    pairs.update(s["opts"])  # raw Detectron2 keys win
    flat = []
    for k, v in pairs.items():
        flat += [k, v]
    try:
        cfg.merge_from_list(flat)
    except (KeyError, AssertionError, ValueError) as exc:
        raise DetectionError(f"detectron2 rejected a config value: {exc}") from exc
    cfg.freeze()
    return cfg


def register_voc(dirs: Mapping[str, str | Path], names: Sequence[str]) -> None:
    """(Re-)register the VOC splits in `names` whose devkit folder (VOCdevkit/VOC2007 or VOC2012) `dirs` gives
    (Detectron2 registers them at import time from $DETECTRON2_DATASETS, which may have been unset then)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets.pascal_voc import register_pascal_voc

    for name in names:
        if name not in VOC_SPLITS or name not in dirs:
            continue
        _, split = VOC_SPLITS[name]
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_pascal_voc(name, str(dirs[name]), split, 2007 if "2007" in name else 2012)


def voc_dirs(s: Mapping, data: Mapping | None) -> dict[str, str]:
    """Devkit folder of each VOC split: the prepared voc0712 index's, else under datasets_root/DETECTRON2_DATASETS."""
    if data is not None and data.get("kind") == "detection":
        return dict(data["dirs"])
    root = Path(s["datasets_root"] or os.getenv("DETECTRON2_DATASETS", "datasets")).expanduser()
    return {name: str(root / year) for name, (year, _) in VOC_SPLITS.items()}


def write_scenes(name: str, scenes, image_dir: str | Path) -> dict:
    """Write proxy scenes as PNGs plus a Detectron2 dataset-dict JSON (XYXY_ABS boxes, 0-based categories);
    returns the spec `register_scenes` takes. Files, not closures, so spawned DDP workers can register too."""
    import numpy as np
    from PIL import Image

    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(len(scenes)):
        path = image_dir / f"scene_{i:06d}.png"
        img = scenes.images[i].numpy()
        Image.fromarray(img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))).save(path)
        records.append({"file_name": str(path), "image_id": i + 1, "height": img.shape[1], "width": img.shape[2],
                        "annotations": [{"bbox": b, "bbox_mode": 0, "category_id": int(c), "iscrowd": 0}
                                        for b, c in zip(scenes.boxes[i].tolist(), scenes.labels[i].tolist())]})
    spec = {"name": name, "records": str(image_dir / "dataset.json"), "classes": list(scenes.classes)}
    save_json(records, spec["records"])
    return spec


def register_scenes(spec: Mapping) -> None:
    """(Re-)register a dataset written by `write_scenes` in Detectron2's catalogs."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.structures import BoxMode

    def load():
        records = json.loads(Path(spec["records"]).read_text())
        for r in records:
            for a in r["annotations"]:
                a["bbox_mode"] = BoxMode(a["bbox_mode"])
        return records

    if spec["name"] in DatasetCatalog.list():
        DatasetCatalog.remove(spec["name"])
        MetadataCatalog.remove(spec["name"])
    DatasetCatalog.register(spec["name"], load)
    MetadataCatalog.get(spec["name"]).set(thing_classes=list(spec["classes"]), evaluator_type="coco")


def _trainer_class():
    from detectron2.engine import DefaultTrainer
    from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators, PascalVOCDetectionEvaluator
    from detectron2.utils import comm
    from detectron2.utils.events import CommonMetricPrinter, JSONWriter

    class Detections(DatasetEvaluator):
        """Every test detection (original image pixels, XYXY), written once to a JSON file for sempos' evaluation."""

        def __init__(self, path: str) -> None:
            self.path, self.rows = path, []

        def reset(self):
            self.rows = []

        def process(self, inputs, outputs):
            for inp, out in zip(inputs, outputs):
                inst = out["instances"].to("cpu")
                for box, score, cls in zip(inst.pred_boxes.tensor.tolist(), inst.scores.tolist(),
                                           inst.pred_classes.tolist()):
                    self.rows.append({"file_name": inp["file_name"], "label": int(cls), "score": float(score),
                                      "box": box})

        def evaluate(self):
            rows = comm.gather(self.rows, dst=0)
            if comm.is_main_process():
                save_json([r for part in rows for r in part], self.path)
            return {}

    class Trainer(DefaultTrainer):
        """MoCo's train_net.Trainer (VOC or COCO evaluator by dataset name) plus the detection collector, logging
        to the console and metrics.json only, so tensorboard is not needed."""

        @classmethod
        def build_evaluator(cls, cfg, dataset_name, output_folder=None):
            output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
            own = (PascalVOCDetectionEvaluator(dataset_name) if dataset_name.startswith("voc")
                   else COCOEvaluator(dataset_name, output_dir=output_folder))
            return DatasetEvaluators([own, Detections(os.path.join(cfg.OUTPUT_DIR, f"detections_{dataset_name}.json"))])

        def build_writers(self):
            return [CommonMetricPrinter(self.max_iter), JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))]

    return Trainer


def _train_worker(cfg_yaml: str, result_path: str, scene_specs: Sequence[Mapping] = (),
                  voc: Mapping[str, str] | None = None) -> None:
    """One process's dataset registration, Detectron2 training and final evaluation; the main process writes
    the results JSON. Runs in the caller's process, or in each worker that detectron2's launch spawns."""
    from detectron2.config import get_cfg
    from detectron2.utils import comm
    from detectron2.utils.env import seed_all_rng

    register_extra_norm_heads()
    if voc:
        register_voc(voc, list(VOC_SPLITS))
    for spec in scene_specs:
        register_scenes(spec)
    cfg = get_cfg()
    cfg.merge_from_other_cfg(cfg.load_cfg(cfg_yaml))
    cfg.freeze()
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED + comm.get_rank())
    trainer = _trainer_class()(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    results = getattr(trainer, "_last_eval_results", None) or trainer.test(cfg, trainer.model)
    if comm.is_main_process():
        save_json(_plain(results), result_path)


def _under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _join_torchrun(worker, args) -> None:
    """Run `worker` in this torchrun rank as detectron2.engine.launch's workers do: one process group over every
    rank, Detectron2's per-machine group, this rank's GPU."""
    import torch
    import torch.distributed as tdist
    from detectron2.utils import comm

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    if comm._LOCAL_PROCESS_GROUP is None:
        comm.create_local_process_group(int(os.environ.get("LOCAL_WORLD_SIZE", tdist.get_world_size())))
    comm.synchronize()
    worker(*args)


def _plain(obj):
    """Detectron2 results (OrderedDicts of numpy floats) as JSON-ready Python values."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return float(obj) if hasattr(obj, "__float__") and not isinstance(obj, (int, bool)) else obj


def train_and_evaluate(cfg, num_gpus: int = 1, scene_specs: Sequence[Mapping] = (),
                       voc: Mapping[str, str] | None = None) -> dict:
    """Detectron2 DefaultTrainer training from cfg.MODEL.WEIGHTS, then evaluation on cfg.DATASETS.TEST;
    returns Detectron2's evaluator results ({"bbox": {"AP", "AP50", "AP75", ...}}) and leaves every detection in
    OUTPUT_DIR/detections_<test set>.json. scene_specs (write_scenes) and voc (split -> devkit folder) name the
    datasets to register in every process."""
    _require()
    out = Path(cfg.OUTPUT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / "results.json"
    args = (cfg.dump(), str(result_path), list(scene_specs), dict(voc) if voc else None)
    if _under_torchrun():
        _join_torchrun(_train_worker, args)
    elif num_gpus > 1:
        from detectron2.engine import launch

        launch(_train_worker, num_gpus, dist_url="auto", args=args)
    else:
        _train_worker(*args)
    if not result_path.exists():
        from detectron2.utils import comm

        if not comm.is_main_process():
            return {}
        raise DetectionError(f"detectron2 training in {out} ended without writing {result_path.name}; see its log")
    return json.loads(result_path.read_text())


def _scene_specs(s: Mapping, data: Mapping | None, det: Mapping, out_dir: Path) -> list[dict]:
    """Write the proxy-scene datasets that `s` names (sempos_proxy*); test names get the test scenes."""
    names = list(s["train_datasets"]) + list(s["test_datasets"])
    proxy = [n for n in names if n.startswith(PROXY_PREFIX)]
    if not proxy:
        return []
    if data is None:
        raise DetectionError(f"datasets {proxy} are proxy scenes: pass the prepared dataset payload (data=...)")
    if int(s["opts"].get("MODEL.ROI_HEADS.NUM_CLASSES", s["num_classes"])) != len(data["classes"]):
        raise DetectionError(f"proxy scenes have {len(data['classes'])} classes: set detection.detectron2."
                             f"num_classes: {len(data['classes'])}")
    from .scenes import proxy_scene_sets

    train, test = proxy_scene_sets(data, int(det["train_scenes"]), int(det["test_scenes"]), int(det["scene_seed"]),
                                   det["scenes"])
    return [write_scenes(n, test if n in s["test_datasets"] else train, out_dir / "scenes" / n) for n in proxy]


def _check_voc(s: Mapping, dirs: Mapping[str, str]) -> None:
    """Fail before any training when a VOC split's folder is missing (Detectron2 would fail much later)."""
    for name in list(s["train_datasets"]) + list(s["test_datasets"]):
        if name in VOC_SPLITS and not (Path(dirs[name]) / "ImageSets" / "Main").is_dir():
            raise DetectionError(f"dataset {name} needs {dirs[name]} (VOCdevkit layout: Annotations/, ImageSets/Main/, "
                                 f"JPEGImages/): run the prepare stage for voc0712 (detection.dataset: voc0712), or "
                                 f"set detection.detectron2.datasets_root to the folder holding VOC2007/ and VOC2012/")


def _test_ground_truth(s: Mapping, det: Mapping, data: Mapping | None, specs: Sequence[Mapping]):
    """(ground-truth records, classes, file name -> record position) of the (first) test set, for
    sempos.detection.evaluate."""
    name = s["test_datasets"][0]
    if name.startswith(PROXY_PREFIX):
        spec = next(sp for sp in specs if sp["name"] == name)
        records = json.loads(Path(spec["records"]).read_text())
        gt = [{"image_id": i, "boxes": [a["bbox"] for a in r["annotations"]],
               "labels": [a["category_id"] for a in r["annotations"]], "difficult": [0] * len(r["annotations"]),
               "width": r["width"], "height": r["height"]} for i, r in enumerate(records)]
        return gt, list(spec["classes"]), {r["file_name"]: i for i, r in enumerate(records)}
    if data is not None and data.get("kind") == "detection" and name in data["sets"]:
        from .voc import VOCBoxes

        boxes = VOCBoxes.from_index(data, [name])
        return boxes.ground_truth(), boxes.classes, {r["file"]: i for i, r in enumerate(boxes.records)}
    return None, None, None  # a dataset sempos has no index of: Detectron2's own evaluator only


def _score(trial_dir: Path, s: Mapping, gt, classes, where, use_07: bool, d2_results: Mapping) -> dict:
    """sempos' metrics on the collected detections, plus Detectron2's evaluator as d2_*."""
    from .evaluate import evaluate

    d2 = {f"d2_{k}": v for k, v in coco_convention(d2_results.get("bbox", {})).items()}
    if gt is None:
        return {**{k[3:]: v for k, v in d2.items()}, **d2}
    rows = json.loads((trial_dir / f"detections_{s['test_datasets'][0]}.json").read_text())
    dets = [{"image_id": where[r["file_name"]], "label": r["label"], "score": r["score"], "box": r["box"]}
            for r in rows]
    return {**evaluate(gt, dets, classes, use_07), **d2, "detections": len(dets)}


def coco_convention(bbox: Mapping) -> dict[str, float]:
    """Detectron2's COCOEvaluator writes NaN both for 'no ground truth in this area range' (COCO's -1) and,
    for every metric, when the model predicted nothing (which COCOeval scores 0). Map them back, so both
    backends report the same numbers and metrics.json stays strict JSON."""
    values = {k: float(v) for k, v in bbox.items()}
    if values and all(math.isnan(v) for v in values.values()):
        return {k: 0.0 for k in values}
    return {k: (-1.0 if math.isnan(v) else v) for k, v in values.items()}


def run_trials(backbone_path, cfg: Mapping, seeds: Sequence[int], out_dir: str | Path,
               data: Mapping | None = None) -> dict:
    """MoCo's protocol in Detectron2: convert the backbone once, train one detector per seed, report per-seed
    and mean/std AP, AP50, AP75 (sempos.detection.evaluate on the collected detections) and Detectron2's own
    evaluator's (d2_*). `cfg` is the whole `detection` section (its `detectron2` sub-section holds the
    overrides); `data` is the prepared payload: the voc0712 index, or the pretraining dataset for proxy scenes."""
    _require()
    from detectron2.utils import comm

    det = detection_settings(cfg)
    s = d2_settings(det["detectron2"])
    if not seeds:
        raise DetectionError("run_trials needs at least one seed (MoCo reports the mean of 5)")
    out_dir = Path(out_dir)
    meta = load_torch(backbone_path)["meta"]
    weights = out_dir / "backbone_detectron2.pkl"
    if not _under_torchrun() or int(os.environ.get("RANK", "0")) == 0:
        convert_checkpoint(backbone_path, weights)
    specs = _scene_specs(s, data if data is None or data.get("kind") != "detection" else None, det, out_dir)
    dirs = voc_dirs(s, data)
    _check_voc(s, dirs)
    gt, classes, where = _test_ground_truth(s, det, data, specs)
    per_seed = {}
    for seed in seeds:
        trial_dir = out_dir / f"trial{int(seed)}"
        d2cfg = build_cfg(s, meta, weights, trial_dir, int(seed))
        results = train_and_evaluate(d2cfg, int(s["num_gpus"]), specs, dirs)
        if _under_torchrun() and not comm.is_main_process():
            continue
        per_seed[str(int(seed))] = {"seed": int(seed), **_score(trial_dir, s, gt, classes, where,
                                                                bool(det["voc"]["use_07_metric"]), results)}
        log.info("detectron2 trial seed %d: %s", int(seed),
                 {k: round(v, 2) for k, v in per_seed[str(int(seed))].items() if k in ("AP", "AP50", "AP75")})
    if _under_torchrun() and not comm.is_main_process():
        return {}
    keys = [k for k in ("AP", "AP50", "AP75", "coco_AP", "coco_AP50", "coco_AP75", "coco_APs", "coco_APm",
                        "coco_APl", "d2_AP", "d2_AP50", "d2_AP75") if all(k in t for t in per_seed.values())]
    result = {"per_seed": per_seed, **summarize(list(per_seed.values()), keys), "n_trials": len(per_seed),
              "backend": "detectron2", "dataset": det["dataset"], "backbone_path": str(backbone_path), "settings": s}
    save_json(result, out_dir / "metrics.json")
    return result


def load_report(weights: str | Path, settings: Mapping | None = None, meta: Mapping | None = None) -> dict:
    """Build the C4 model (on CPU), load a converted .pkl with Detectron2's own DetectionCheckpointer (suffix
    matching) and report its incompatible keys: the backbone/res5 keys the file left missing, the file keys no
    model key used (`unused`, Detectron2's unexpected keys), and keys whose shapes disagree."""
    _require()
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    s = d2_settings(settings)
    s["device"] = "cpu"
    model = build_model(build_cfg(s, meta))
    checkpointer = DetectionCheckpointer(model)
    # _load_model is what checkpointer.load() runs after reading the file; it returns fvcore's _IncompatibleKeys.
    checkpoint = checkpointer._load_file(str(weights))
    n_file = len(checkpoint["model"])
    incompatible = checkpointer._load_model(checkpoint)
    pretrained = [k for k in incompatible.missing_keys
                  if k.startswith("backbone.") or (k.startswith("roi_heads.res5.") and ".res5.norm." not in k)]
    unused, wrong = sorted(incompatible.unexpected_keys), sorted(k for k, *_ in incompatible.incorrect_shapes)
    return {"missing": sorted(pretrained), "unused": unused, "wrong_shape": wrong,
            "loaded": n_file - len(unused) - len(wrong)}  # file keys that reached a model parameter or buffer
