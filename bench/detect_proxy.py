"""Does the CPU detection proxy rank backbones? AP of several backbones x detector trials on the proxy scenes.

Runs sempos.detection.train.run_trials (the detect stage's torchvision path) for each backbone.pt on the same
proxy scenes with the same trial seeds, prints per-trial AP50 (VOC 11-point, IoU 0.5), mean ± std of AP / AP50 /
AP75 / coco_AP50 and CPU seconds, and says whether each backbone's mean AP50 beats the first one's (random init)
by more than the sum of both standard deviations.

python bench/detect_proxy.py --params params.yaml --trials 0 1 2 \
    --set '{"solver": {"iters": 120}}' runs/fmnist/random_init/seed0/backbone.pt runs/fmnist/simclr/seed0/backbone.pt
--set overlays the params' eval.detection section (JSON). Numbers belong in docs/results.md with the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sempos.config import deep_merge, load_params  # noqa: E402
from sempos.data.prepare import load_prepared  # noqa: E402
from sempos.detection.train import run_trials  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("backbones", nargs="+", type=Path)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--configfile", action="append", default=[])
    ap.add_argument("--set", default="{}", help="JSON merged into eval.detection")
    ap.add_argument("--trials", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    p = load_params(args.params, args.configfile)
    cfg = deep_merge(p["eval"]["detection"], json.loads(args.set))
    for k in ("trials", "methods", "dataset"):
        cfg.pop(k, None)
    data = load_prepared(Path(f"data/prepared/{p['data']['pretrain']}.pt"))
    rows = []
    for bb in args.backbones:
        t0 = time.process_time()
        w0 = time.time()
        res = run_trials(bb, cfg, args.trials, data=data)
        per = [res["per_seed"][str(s)] for s in args.trials]
        rows.append({"backbone": str(bb), **{k: [t[k] for t in per] for k in ("AP50", "AP", "AP75", "coco_AP50")},
                     "cpu_s": time.process_time() - t0, "wall_s": time.time() - w0})
    base = rows[0]
    print(f"detection overlay: {json.dumps(json.loads(args.set))}; trials {args.trials}")
    print("| backbone | AP50 per trial | AP50 mean ± std | AP mean ± std | AP75 mean ± std | coco_AP50 mean ± std "
          "| CPU s | wall s | AP50 beats first by more than both stds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a50 = np.array(r["AP50"])
        sd = a50.std(ddof=1) if len(a50) > 1 else 0.0
        b = np.array(base["AP50"])
        b_sd = b.std(ddof=1) if len(b) > 1 else 0.0
        gap = a50.mean() - b.mean()
        beats = "–" if r is base else ("yes" if gap > sd + b_sd else "no") + f" ({gap:+.1f})"
        fmt = lambda v: f"{np.mean(v):.1f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:.1f}"  # noqa: E731
        print(f"| {Path(r['backbone']).parent.parent.name} | {' '.join(f'{v:.1f}' for v in r['AP50'])} | "
              f"{fmt(r['AP50'])} | {fmt(r['AP'])} | {fmt(r['AP75'])} | {fmt(r['coco_AP50'])} | {r['cpu_s']:.0f} | "
              f"{r['wall_s']:.0f} | {beats} |")
    if args.out:
        args.out.write_text(json.dumps({"overlay": json.loads(args.set), "trials": args.trials, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
