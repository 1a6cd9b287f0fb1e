"""Object detection from a pretrained backbone: MoCo's Faster R-CNN C4 protocol, mean of several trials.

detection.dataset: proxy scenes of the pretraining dataset (CPU) or voc0712 (VOC07+12 trainval -> VOC07 test,
config/voc.yaml); detection.backend: torchvision (always available) or detectron2 (when installed).
"""

from pathlib import Path

from ..data.prepare import load_prepared
from ..runtime import resolve
from .common import run_stage


def body(params, args):
    cfg = dict(params["eval"]["detection"])
    trials = cfg.pop("trials")
    cfg.pop("methods", None)
    rt = resolve(params["runtime"])
    if rt.device.type == "cpu":
        import torch

        # The detector's many small ops run ~7x slower in CPU time when two threads wait on each other.
        torch.set_num_threads(1)
    backbone = Path(args.inputs["backbone"])
    out_dir = Path(args.outputs["metrics"]).parent  # both backends write metrics.json (+ history) there
    data = load_prepared(args.inputs["prepared"])
    # Trial seeds are offset by the pretraining seed so that different runs do not share detector draws.
    seeds = [int(args.seed) * 1000 + t for t in trials]
    if cfg.get("backend", "torchvision") == "detectron2":
        from ..detection import detectron2_backend

        detectron2_backend.run_trials(backbone, cfg, seeds, out_dir, data=data)
    else:
        from ..detection.train import run_trials

        run_trials(backbone, cfg, seeds, data=data, device=rt.device, out_dir=out_dir, sync_bn=rt.sync_bn)


if __name__ == "__main__":
    raise SystemExit(run_stage("detect", ("ds", "method", "seed"), body))
