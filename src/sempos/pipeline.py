"""The stage table: the one description of the DAG that Snakemake rules and dvc.yaml both come from.

Each stage names its wildcards, the files it reads and writes, the params sections it depends on and the
command that runs it (`python -m sempos.stages.<name> --params FILE --<wildcard> VALUE ...`).
`python -m sempos.pipeline dvc [--params FILE]` prints the dvc.yaml for a params file;
tests/workflow/test_dvc_sync.py fails when the committed dvc.yaml drifts from it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable, Mapping

import yaml

from .data.kinds import is_encoded

Wc = Mapping[str, str]

RAW = "data/raw/{ds}/"  # a directory: every verified raw file plus MANIFEST.json
PREPARED = "data/prepared/{ds}.pt"
# JPEG datasets: the pack manifest. The shard files beside it (data/shards/{ds}/) are not declared outputs:
# Snakemake and DVC delete declared outputs before a rerun, and a pack must resume from its finished shards.
SHARDS = "data/shards/{ds}.pt"
BACKBONE = "runs/{ds}/{method}/seed{seed}/backbone.pt"
HISTORY = "runs/{ds}/{method}/seed{seed}/history.csv"
POSITIVES = "runs/{ds}/{method}/seed{seed}/positives.json"
PAIRS = "pairs/{ds}/{method}/seed{seed}.csv"
PAIRS_DIAG = "pairs/{ds}/{method}/seed{seed}.json"
MINED_SOURCES = ("mined", "study_m")
FEATURES = "features/{ds}/{method}/seed{seed}/{target}.pt"
KNN = "results/knn/{ds}/{method}/seed{seed}/metrics.json"
LINEAR = "results/linear/{ds}/{method}/seed{seed}/metrics.json"
TRANSFER = "results/transfer/{target}/{ds}/{method}/seed{seed}/metrics.json"
SEMISUP = "results/semisup/{ds}/{method}/seed{seed}/frac{frac}/metrics.json"
DETECT = "results/detect/{ds}/{method}/seed{seed}/metrics.json"
REPORT = "results/report.md"
TABLES = "results/tables/"
PLOTS = "results/plots/"

WILDCARD_PATTERNS = {"ds": "[a-z0-9_]+", "method": "[a-z][a-z0-9_]*", "seed": "[0-9]+",
                     "target": "[a-z0-9_]+", "frac": "[0-9]+(\\.[0-9]+)?"}


def fill(pattern: str, wc: Wc) -> str:
    return pattern.format(**wc).rstrip("/")


@dataclass(frozen=True)
class Stage:
    name: str
    wildcards: tuple[str, ...]
    outputs: tuple[str, ...]
    inputs: Callable[[dict, Wc], list[str]]
    params: Callable[[dict, Wc], list[str]]
    instances: Callable[[dict], list[dict]]
    code: tuple[str, ...] = ()
    heavy: bool = False  # uses runtime.threads cores (and a GPU when there is one)
    extra_outputs: tuple[str, ...] = field(default=())

    def command(self, params_file: str, wc: Wc, python: str = "python", gpus: int | str | None = None) -> str:
        """The job's command line; with `gpus`, wrapped by sempos.launch (own devices, torchrun when > 1)."""
        args = "".join(f" --{k} {wc[k]}" for k in self.wildcards)
        cmd = f"{python} -m sempos.stages.{self.name} --params {params_file}{args}"
        return f"{python} -m sempos.launch --gpus {gpus} -- {cmd}" if gpus else cmd

    def gpus(self, p: dict) -> int:
        """GPUs one job of this stage asks for: runtime.gpus_per_job for heavy stages, else none."""
        return int(p["runtime"].get("gpus_per_job", 0)) if self.heavy else 0


# --- which instances exist under a params dict ----------------------------------------------------

def pretrain_ds(p: dict) -> str:
    return p["data"]["pretrain"]


def transfer_targets(p: dict) -> list[str]:
    return list(p["eval"]["transfer"]["targets"])


def dataset_of_target(target: str) -> str:
    """fmnist_heldout is a split of fmnist, not a separate download."""
    return "fmnist" if target == "fmnist_heldout" else target


def needed_datasets(p: dict) -> list[str]:
    ds = [pretrain_ds(p)] + [dataset_of_target(t) for t in transfer_targets(p)]
    return sorted(set(ds))


def runs(p: dict) -> list[dict]:
    return [{"ds": pretrain_ds(p), "method": m, "seed": str(s)} for m, s in product(p["methods"], p["seeds"])]


def semisup_runs(p: dict) -> list[dict]:
    return [{**r, "frac": _frac(f)} for r in runs(p) for f in p["eval"]["semisup"]["fractions"]]


def detect_runs(p: dict) -> list[dict]:
    """Detection is the costliest evaluation: eval.detection.methods picks the runs (empty = every method)."""
    chosen = p["eval"]["detection"].get("methods") or list(p["methods"])
    return [r for r in runs(p) if r["method"] in chosen]


def _frac(f) -> str:
    return str(int(f)) if float(f) == int(f) else str(f)


def feature_targets(p: dict) -> list[str]:
    return sorted({pretrain_ds(p)} | {dataset_of_target(t) for t in transfer_targets(p)})


def positives_of(p: dict, method: str) -> dict:
    return p["methods"][method].get("positives") or {}


def is_mined(p: dict, method: str) -> bool:
    return positives_of(p, method).get("source", "augment") in MINED_SOURCES


def mined_runs(p: dict) -> list[dict]:
    return [r for r in runs(p) if is_mined(p, r["method"])]


def encoded_datasets(p: dict) -> list[str]:
    return [d for d in needed_datasets(p) if is_encoded(d)]


def _download_params(p: dict, wc: Wc) -> list[str]:
    # Where the manual copy lives and which label-subset lists to fetch (present keys only).
    if not is_encoded(wc["ds"]) or wc["ds"] != pretrain_ds(p):
        return []
    return [f"data.{k}" for k in ("root", "semi_fractions") if k in p["data"]]


def _prepare_inputs(p: dict, wc: Wc) -> list[str]:
    return [fill(RAW, wc)] + ([fill(SHARDS, wc)] if is_encoded(wc["ds"]) else [])


def _linear_inputs(p: dict, wc: Wc) -> list[str]:
    if p["eval"]["linear"].get("protocol", "features") == "augmented":
        return [fill(BACKBONE, wc), fill(PREPARED, wc)]
    return [fill(FEATURES, {**wc, "target": wc["ds"]})]


def _pretrain_inputs(p: dict, wc: Wc) -> list[str]:
    return [fill(PREPARED, wc)] + ([fill(PAIRS, wc)] if is_mined(p, wc["method"]) else [])


def _mine_inputs(p: dict, wc: Wc) -> list[str]:
    sampler = positives_of(p, wc["method"])["from"]
    return [fill(BACKBONE, {**wc, "method": sampler}), fill(PREPARED, wc)]


def _pretrain_params(p: dict, wc: Wc) -> list[str]:
    return ["backbone", "pretrain", "augment", f"methods.{wc['method']}"]


def _report_inputs(p: dict, wc: Wc) -> list[str]:
    out = []
    for r in runs(p):
        out += [fill(HISTORY, r), fill(POSITIVES, r), fill(KNN, r), fill(LINEAR, r)]
        if is_mined(p, r["method"]):
            out.append(fill(PAIRS_DIAG, r))
        out += [fill(TRANSFER, {**r, "target": t}) for t in transfer_targets(p)]
        out += [fill(SEMISUP, {**r, "frac": _frac(f)}) for f in p["eval"]["semisup"]["fractions"]]
    out += [fill(DETECT, r) for r in detect_runs(p)]
    return out


STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage(
            name="download", wildcards=("ds",), outputs=(RAW,),
            inputs=lambda p, wc: [], params=_download_params,
            instances=lambda p: [{"ds": d} for d in needed_datasets(p)],
            code=("src/sempos/data",),
        ),
        Stage(
            name="pack", wildcards=("ds",), outputs=(SHARDS,),
            inputs=lambda p, wc: [fill(RAW, wc)], params=lambda p, wc: ["data.pack"] if "pack" in p["data"] else [],
            instances=lambda p: [{"ds": d} for d in encoded_datasets(p)],
            code=("src/sempos/data",),
        ),
        Stage(
            name="prepare", wildcards=("ds",), outputs=(PREPARED,),
            inputs=_prepare_inputs,
            params=lambda p, wc: ["data"] if wc["ds"] == pretrain_ds(p) else [],
            instances=lambda p: [{"ds": d} for d in needed_datasets(p)],
            code=("src/sempos/data",),
        ),
        Stage(
            name="mine", wildcards=("ds", "method", "seed"), outputs=(PAIRS, PAIRS_DIAG),
            inputs=_mine_inputs, params=lambda p, wc: [f"methods.{wc['method']}.positives"],
            instances=mined_runs, code=("src/sempos/mining",), heavy=True,
        ),
        Stage(
            name="pretrain", wildcards=("ds", "method", "seed"), outputs=(BACKBONE, HISTORY, POSITIVES),
            inputs=_pretrain_inputs,
            params=_pretrain_params, instances=runs,
            code=("src/sempos/train", "src/sempos/algos", "src/sempos/models", "src/sempos/augment.py",
                  "src/sempos/losses.py"),
            heavy=True,
        ),
        Stage(
            name="embed", wildcards=("ds", "method", "seed", "target"), outputs=(FEATURES,),
            inputs=lambda p, wc: [fill(BACKBONE, wc), fill(PREPARED, {"ds": wc["target"]})],
            params=lambda p, wc: [],
            instances=lambda p: [{**r, "target": t} for r in runs(p) for t in feature_targets(p)],
            code=("src/sempos/eval/features.py",),
            heavy=True,
        ),
        Stage(
            name="knn", wildcards=("ds", "method", "seed"), outputs=(KNN,),
            inputs=lambda p, wc: [fill(FEATURES, {**wc, "target": wc["ds"]})],
            params=lambda p, wc: ["eval.knn"], instances=runs,
            code=("src/sempos/eval/knn.py",),
        ),
        Stage(
            name="linear", wildcards=("ds", "method", "seed"), outputs=(LINEAR,),
            inputs=_linear_inputs,
            params=lambda p, wc: ["eval.linear"], instances=runs,
            code=("src/sempos/eval/linear.py",),
            heavy=True,
        ),
        Stage(
            name="transfer", wildcards=("ds", "method", "seed", "target"), outputs=(TRANSFER,),
            inputs=lambda p, wc: [fill(FEATURES, {**wc, "target": dataset_of_target(wc["target"])})],
            params=lambda p, wc: ["eval.transfer"],
            instances=lambda p: [{**r, "target": t} for r in runs(p) for t in transfer_targets(p)],
            code=("src/sempos/eval/transfer.py",),
        ),
        Stage(
            name="semisup", wildcards=("ds", "method", "seed", "frac"), outputs=(SEMISUP,),
            inputs=lambda p, wc: [fill(BACKBONE, wc), fill(PREPARED, wc)],
            params=lambda p, wc: ["eval.semisup"], instances=semisup_runs,
            code=("src/sempos/eval/finetune.py",), heavy=True,
        ),
        Stage(
            name="detect", wildcards=("ds", "method", "seed"), outputs=(DETECT,),
            inputs=lambda p, wc: [fill(BACKBONE, wc), fill(PREPARED, wc)],
            params=lambda p, wc: ["eval.detection"], instances=detect_runs,
            code=("src/sempos/detection",), heavy=True,
        ),
        Stage(
            name="report", wildcards=(), outputs=(REPORT, TABLES, PLOTS),
            inputs=_report_inputs, params=lambda p, wc: ["report"],
            instances=lambda p: [{}],
            code=("src/sempos/report",),
        ),
    ]
}


# Which .smk file holds which stages' rules (python -m sempos.pipeline smk writes them).
RULE_FILES = {"data": ("download", "pack", "prepare"), "pretrain": ("pretrain", "mine"),
              "eval": ("embed", "knn", "linear", "transfer", "semisup", "detect"), "report": ("report",)}
RULE_TEMPLATE = """
rule {name}:
    input:
        SMK.input("{name}"),
    output:
        SMK.output("{name}"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("{name}"),
    threads: SMK.threads("{name}")
    resources:
        gpu=SMK.gpus("{name}"),
    shell:
        SMK.shell("{name}")
"""


def render_smk() -> dict[str, str]:
    """workflow/rules/<file>.smk texts: one thin rule per stage, everything delegated to the stage table."""
    missing = set(STAGES) - {n for names in RULE_FILES.values() for n in names}
    if missing:
        raise RuntimeError(f"stages without a rule file: {sorted(missing)}")
    return {f: f"# GENERATED by `python -m sempos.pipeline smk` from the stage table; do not edit.\n"
               + "".join(RULE_TEMPLATE.format(name=n) for n in names) for f, names in RULE_FILES.items()}


def final_targets(p: dict) -> list[str]:
    return [fill(o, {}) for o in STAGES["report"].outputs]


def instance_name(stage: Stage, wc: Wc) -> str:
    parts = [stage.name] + [f"seed{wc[k]}" if k == "seed" else wc[k] for k in stage.wildcards]
    return "-".join(parts)


def dvc_yaml(p: dict, params_file: str = "params.yaml") -> dict:
    stages = {}
    for stage in STAGES.values():
        for wc in stage.instances(p):
            entry: dict = {"cmd": stage.command(params_file, wc)}
            deps = stage.inputs(p, wc) + list(stage.code)
            if deps:
                entry["deps"] = deps
            keys = stage.params(p, wc)
            if keys:
                entry["params"] = keys if params_file == "params.yaml" else [{params_file: keys}]
            entry["outs"] = [fill(o, wc).rstrip("/") for o in stage.outputs]
            stages[instance_name(stage, wc)] = entry
    return {"stages": stages}


DVC_HEADER = "# GENERATED by `python -m sempos.pipeline dvc > dvc.yaml` from the stage table; do not edit.\n"


def render_dvc(p: dict, params_file: str = "params.yaml") -> str:
    return DVC_HEADER + yaml.safe_dump(dvc_yaml(p, params_file), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    from .config import load_params

    ap = argparse.ArgumentParser(prog="python -m sempos.pipeline")
    ap.add_argument("what", choices=["dvc", "smk", "stages"])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--configfile", action="append", default=[], help="overlay(s) merged on top")
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    args = ap.parse_args(argv)
    if args.what == "smk":
        rules = Path(args.output or "workflow/rules")
        for name, text in render_smk().items():
            (rules / f"{name}.smk").write_text(text)
        return 0
    p = load_params(args.params, args.configfile)
    if args.what == "dvc":
        text = render_dvc(p, args.params)
    else:
        text = "\n".join(f"{instance_name(s, wc)}" for s in STAGES.values() for wc in s.instances(p)) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# --- Snakemake view of the same table ------------------------------------------------------------

def _section(p: dict, dotted: str):
    node = p
    for part in dotted.split("."):
        node = node[part]
    return node


class SnakemakeView:
    """Input/output/params/shell directives of a rule, derived from the stage table."""

    def __init__(self, config: dict, params_file: str) -> None:
        self.config, self.params_file = config, params_file

    def input(self, name: str):
        stage = STAGES[name]
        return lambda wc: stage.inputs(self.config, dict(wc.items()))

    def output(self, name: str) -> list:
        from snakemake.io import directory

        return [directory(o.rstrip("/")) if o.endswith("/") else o for o in STAGES[name].outputs]

    def sections(self, name: str):
        """The params sections a stage reads, as JSON: Snakemake reruns the job when they change."""
        import json

        stage = STAGES[name]
        return lambda wc: json.dumps({k: _section(self.config, k) for k in stage.params(self.config, dict(wc.items()))},
                                     sort_keys=True)

    def threads(self, name: str) -> int:
        return int(self.config["runtime"]["threads"]) if STAGES[name].heavy else 1

    def gpus(self, name: str) -> int:
        return STAGES[name].gpus(self.config)

    def shell(self, name: str) -> str:
        import shlex
        import sys

        stage = STAGES[name]
        # dvc.yaml's command, run by the interpreter running Snakemake, so `.venv/bin/snakemake` works without
        # an activated venv (a bare `python` would be the system one, without sempos).
        return stage.command("{params.file}", {k: "{wildcards.%s}" % k for k in stage.wildcards},
                             python=shlex.quote(sys.executable), gpus="{resources.gpu}" if self.gpus(name) else None)


def snakemake_params_file(config: dict, default: str = "params.yaml") -> str:
    """params.yaml itself when Snakemake's config equals it; otherwise the merged config, written once."""
    from .config import digest
    from .io import save_text

    base = Path(default)
    if base.exists() and yaml.safe_load(base.read_text()) == config:
        return default
    path = Path(".sempos") / f"params-{digest(config)}.yaml"
    if not path.exists():
        save_text(yaml.safe_dump(config, sort_keys=False), path)
    return str(path)
