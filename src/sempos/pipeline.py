"""The stage table: the one description of the DAG that Snakemake rules, dvc.yaml, sempos.runner and the
stages themselves all read.

Each stage names its wildcards, its inputs and outputs (named paths), the params keys it reads (recorded by
value), the instances a params dict asks for, and the modules a job imports by computed name. From that:
  * every job's paths: a stage module gets them as `job.inputs[...]` / `job.outputs[...]` (`job(...)`);
  * its code deps: the static import closure of `sempos.stages.<name>` (sempos.codedeps);
  * its record (`<first output>.record.json`: settings, input and output digests; sempos.provenance)
    and its log (logs/<stage>/<wildcards>.log);
  * dvc.yaml (`python -m sempos.pipeline dvc [--configfile X] -o dvc.yaml`) and the .smk rules
    (`python -m sempos.pipeline smk`); tests/workflow/test_dvc_sync.py fails when the committed ones drift.

To add a stage: a Stage entry below, a module src/sempos/stages/<name>.py whose body reads its paths from
`job`, its name in RULE_FILES, then `make dvc-yaml`.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import yaml

from .config import seeds_of
from .data.kinds import is_encoded

Wc = Mapping[str, str]
Paths = dict[str, "str | list[str]"]

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
TRANSFER_FT = "results/transfer_ft/{target}/{ds}/{method}/seed{seed}/metrics.json"
SEMISUP = "results/semisup/{ds}/{method}/seed{seed}/frac{frac}/metrics.json"
DETECT = "results/detect/{ds}/{method}/seed{seed}/metrics.json"
REPORT = "results/report.md"
METRICS = "results/metrics.json"  # the report's method x metric summary: DVC's metrics file
TABLES = "results/tables/"
PLOTS = "results/plots/"
RECORD_SUFFIX = ".record.json"

WILDCARD_PATTERNS = {"ds": "[a-z0-9_]+", "method": "[a-z][a-z0-9_]*", "seed": "[0-9]+",
                     "target": "[a-z0-9_]+", "frac": "[0-9]+(\\.[0-9]+)?"}


def fill(pattern: str, wc: Wc) -> str:
    return pattern.format(**wc).removesuffix("/")


def _no_modules(p: dict, wc: Wc) -> list[str]:
    return []


@dataclass(frozen=True)
class Stage:
    name: str
    wildcards: tuple[str, ...]
    outputs: Mapping[str, str]  # name -> path template; a trailing "/" marks a directory
    inputs: Callable[[dict, Wc], Paths]  # name -> path (or list of paths)
    params: Callable[[dict, Wc], list[str]]  # dotted params keys the job reads; recorded by value
    instances: Callable[[dict], list[dict]]
    modules: Callable[[dict, Wc], list[str]] = _no_modules  # imported by computed name (see codedeps)
    heavy: bool = False  # uses runtime.threads cores (and a GPU when there is one)
    metrics: tuple[str, ...] = ()  # names of outputs that dvc.yaml lists as metrics

    @property
    def module(self) -> str:
        return f"sempos.stages.{self.name}"

    @property
    def record(self) -> str:
        """Template of the job's record: its first output with the suffix .record.json."""
        first = next(iter(self.outputs.values()))
        base = Path(first)  # a directory's trailing "/" is no part of the Path
        stem = base if first.endswith("/") else base.with_suffix("")
        return f"{stem}{RECORD_SUFFIX}"

    @property
    def log(self) -> str:
        return f"logs/{self.name}/{_job_id(self.wildcards, {k: '{%s}' % k for k in self.wildcards}) or self.name}.log"

    def command(self, params_file: str, wc: Wc, python: str = "python", gpus: int | str | None = None) -> str:
        """The job's command line; with `gpus`, wrapped by sempos.launch (own devices, torchrun when > 1)."""
        args = "".join(f" --{k} {wc[k]}" for k in self.wildcards)
        cmd = f"{python} -m {self.module} --params {params_file}{args}"
        return f"{python} -m sempos.launch --gpus {gpus} -- {cmd}" if gpus else cmd

    def gpus(self, p: dict) -> int:
        """GPUs one job of this stage asks for: runtime.gpus_per_job for heavy stages, else none."""
        return int(p["runtime"].get("gpus_per_job", 0)) if self.heavy else 0


def _job_id(wildcards, wc: Wc) -> str:
    return "-".join(f"seed{wc[k]}" if k == "seed" else str(wc[k]) for k in wildcards)


@dataclass(frozen=True)
class Job:
    """One instance of a stage: its wildcards and every path it reads and writes."""

    stage: Stage
    wc: dict
    inputs: Paths
    outputs: dict[str, str]
    record: str
    log: str

    @property
    def name(self) -> str:
        return instance_name(self.stage, self.wc)

    def input_files(self) -> list[str]:
        return [f for v in self.inputs.values() for f in ([v] if isinstance(v, str) else v)]

    def output_files(self) -> list[str]:
        return list(self.outputs.values())

    def settings(self, p: dict) -> dict:
        """The values of the params keys the job reads: what Snakemake and its record store."""
        return {k: section(p, k) for k in self.stage.params(p, self.wc)}


def job(stage: Stage | str, p: dict, wc: Wc) -> Job:
    stage = STAGES[stage] if isinstance(stage, str) else stage
    wc = {k: str(wc[k]) for k in stage.wildcards}
    return Job(stage, wc, dict(stage.inputs(p, wc)), {n: fill(t, wc) for n, t in stage.outputs.items()},
               fill(stage.record, wc), fill(stage.log, wc))


def all_jobs(p: dict) -> list[Job]:
    return [job(s, p, wc) for s in STAGES.values() for wc in s.instances(p)]


def producers(p: dict) -> dict[str, Job]:
    """Output path -> the job that writes it, for every job of these params."""
    return {out: j for j in all_jobs(p) for out in j.output_files()}


def section(p: Mapping, dotted: str):
    node = p
    for part in dotted.split("."):
        node = node[part]
    return node


# --- which instances exist under a params dict ----------------------------------------------------

def pretrain_ds(p: dict) -> str:
    return p["data"]["pretrain"]


def transfer_targets(p: dict) -> list[str]:
    return list(p["eval"]["transfer"]["targets"])


def dataset_of_target(target: str) -> str:
    """fmnist_heldout is a split of fmnist, not a separate download."""
    from .data.catalog import dataset_of_target as of

    return of(target)


def finetune_targets(p: dict) -> list[str]:
    """eval.transfer.finetune: fine-tune on every single-label dataset target (not derived splits, not VOC07)."""
    from .data.catalog import CATALOG

    if not p["eval"]["transfer"].get("finetune"):
        return []
    return [t for t in transfer_targets(p) if t in CATALOG and not CATALOG[t].extras.get("multilabel")]


def detection_dataset(p: dict) -> str:
    """What detect trains and tests on: `proxy` scenes of the pretraining dataset, or a detection dataset."""
    name = p["eval"]["detection"].get("dataset", "proxy")
    return pretrain_ds(p) if name == "proxy" else name


def needed_datasets(p: dict) -> list[str]:
    ds = [pretrain_ds(p)] + [dataset_of_target(t) for t in transfer_targets(p)]
    if detect_runs(p):
        ds.append(detection_dataset(p))
    return sorted(set(ds))


def _prepare_params(p: dict, wc: Wc) -> list[str]:
    """The pretraining dataset depends on `data`; transfer targets on the keys that set their stored size."""
    if wc["ds"] == pretrain_ds(p):
        return ["data"]
    keys = ["data.pretrain", "data.image_size", "eval.transfer.image_size"]
    return [k for k in keys if _has(p, k)]


def _has(p: dict, dotted: str) -> bool:
    node = p
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def runs(p: dict) -> list[dict]:
    """(method, seed) pairs: the global seeds, limited by a method's own `seeds` (config.seeds_of)."""
    return [{"ds": pretrain_ds(p), "method": m, "seed": str(s)} for m in p["methods"] for s in seeds_of(p, m)]


def _chosen(p: dict, section: str) -> list[str]:
    """eval.<section>.methods: absent or null = every method, [] = none."""
    chosen = p["eval"][section].get("methods")
    return list(p["methods"]) if chosen is None else list(chosen)


def semisup_runs(p: dict) -> list[dict]:
    """Fine-tuning is costly on CPU: eval.semisup.methods picks the runs."""
    chosen = _chosen(p, "semisup")
    return [{**r, "frac": _frac(f)} for r in runs(p) if r["method"] in chosen for f in p["eval"]["semisup"]["fractions"]]


def detect_runs(p: dict) -> list[dict]:
    """Detection is the costliest evaluation: eval.detection.methods picks the runs."""
    chosen = _chosen(p, "detection")
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


def matched_variant(p: dict, method: str) -> str | None:
    """The variant whose steps a compute-matched control (positives.match_steps) matches, else None."""
    return positives_of(p, method).get("match_steps")


def encoded_datasets(p: dict) -> list[str]:
    return [d for d in needed_datasets(p) if is_encoded(d)]


def _download_params(p: dict, wc: Wc) -> list[str]:
    # Where the manual copy lives and which label-subset lists to fetch (present keys only).
    if not is_encoded(wc["ds"]) or wc["ds"] != pretrain_ds(p):
        return []
    return [f"data.{k}" for k in ("root", "semi_fractions") if k in p["data"]]


def _prepare_inputs(p: dict, wc: Wc) -> Paths:
    return {"raw": fill(RAW, wc), **({"shards": fill(SHARDS, wc)} if is_encoded(wc["ds"]) else {})}


def _linear_inputs(p: dict, wc: Wc) -> Paths:
    if p["eval"]["linear"].get("protocol", "features") == "augmented":
        return {"backbone": fill(BACKBONE, wc), "prepared": fill(PREPARED, wc)}
    return {"features": _features(wc, wc["ds"])}


def _pretrain_inputs(p: dict, wc: Wc) -> Paths:
    pairs = {"pairs": fill(PAIRS, wc)} if is_mined(p, wc["method"]) else {}
    target = matched_variant(p, wc["method"])
    if target is not None and is_mined(p, target):
        pairs["match_pairs"] = fill(PAIRS, {**wc, "method": target})  # the control is sized by the variant's pair list
    return {"prepared": fill(PREPARED, wc), **pairs}


def _mine_inputs(p: dict, wc: Wc) -> Paths:
    sampler = positives_of(p, wc["method"])["from"]
    return {"backbone": fill(BACKBONE, {**wc, "method": sampler}), "prepared": fill(PREPARED, wc)}


def _pretrain_params(p: dict, wc: Wc) -> list[str]:
    target = matched_variant(p, wc["method"])
    return ["backbone", "pretrain", "augment", f"methods.{wc['method']}"] + (
        [f"methods.{target}.positives"] if target is not None else [])


def _keys_except(p: dict, dotted: str, *skip: str) -> list[str]:
    """The keys of a section one by one, minus those that only choose which jobs exist."""
    return [f"{dotted}.{k}" for k in section(p, dotted) if k not in skip]


def _report_inputs(p: dict, wc: Wc) -> Paths:
    """Exactly the outputs of the current DAG that the report reads (no glob: stale files never leak in)."""
    rs = runs(p)
    return {
        "history": [fill(HISTORY, r) for r in rs],  # in runs(p) order
        "positives": [fill(POSITIVES, r) for r in rs],
        "knn": [fill(KNN, r) for r in rs],
        "linear": [fill(LINEAR, r) for r in rs],
        "transfer": [fill(TRANSFER, {**r, "target": t}) for r in rs for t in transfer_targets(p)],
        "transfer_ft": [fill(TRANSFER_FT, {**r, "target": t}) for r in rs for t in finetune_targets(p)],
        "semisup": [fill(SEMISUP, r) for r in semisup_runs(p)],
        "detect": [fill(DETECT, r) for r in detect_runs(p)],
        "pairs": [fill(PAIRS_DIAG, r) for r in mined_runs(p)],
    }


def _features(wc: Wc, target: str) -> str:
    return fill(FEATURES, {**wc, "target": target})


STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage(
            name="download", wildcards=("ds",), outputs={"raw": RAW},
            inputs=lambda p, wc: {}, params=_download_params,
            instances=lambda p: [{"ds": d} for d in needed_datasets(p)],
        ),
        Stage(
            name="pack", wildcards=("ds",), outputs={"shards": SHARDS},
            inputs=lambda p, wc: {"raw": fill(RAW, wc)},
            params=lambda p, wc: ["data.pack"] if "pack" in p["data"] else [],
            instances=lambda p: [{"ds": d} for d in encoded_datasets(p)],
        ),
        Stage(
            name="prepare", wildcards=("ds",), outputs={"prepared": PREPARED},
            inputs=_prepare_inputs,
            params=_prepare_params,
            instances=lambda p: [{"ds": d} for d in needed_datasets(p)],
        ),
        Stage(
            name="mine", wildcards=("ds", "method", "seed"), outputs={"pairs": PAIRS, "diagnostics": PAIRS_DIAG},
            inputs=_mine_inputs, params=lambda p, wc: [f"methods.{wc['method']}.positives"],
            instances=mined_runs, heavy=True,
        ),
        Stage(
            name="pretrain", wildcards=("ds", "method", "seed"),
            outputs={"backbone": BACKBONE, "history": HISTORY, "positives": POSITIVES},
            inputs=_pretrain_inputs,
            params=_pretrain_params, instances=runs,
            # The trainer imports the method's algorithm by name (sempos.algos.registry).
            modules=lambda p, wc: [f"sempos.algos.{p['methods'][wc['method']]['algo']}"],
            heavy=True,
        ),
        Stage(
            name="embed", wildcards=("ds", "method", "seed", "target"), outputs={"features": FEATURES},
            inputs=lambda p, wc: {"backbone": fill(BACKBONE, wc), "prepared": fill(PREPARED, {"ds": wc["target"]})},
            params=lambda p, wc: [],
            instances=lambda p: [{**r, "target": t} for r in runs(p) for t in feature_targets(p)],
            heavy=True,
        ),
        Stage(
            name="knn", wildcards=("ds", "method", "seed"), outputs={"metrics": KNN},
            inputs=lambda p, wc: {"features": _features(wc, wc["ds"])},
            params=lambda p, wc: ["eval.knn"], instances=runs,
        ),
        Stage(
            name="linear", wildcards=("ds", "method", "seed"), outputs={"metrics": LINEAR},
            inputs=_linear_inputs,
            params=lambda p, wc: ["eval.linear"], instances=runs,
            heavy=True,
        ),
        Stage(
            name="transfer", wildcards=("ds", "method", "seed", "target"), outputs={"metrics": TRANSFER},
            inputs=lambda p, wc: {"features": _features(wc, dataset_of_target(wc["target"]))},
            params=lambda p, wc: _keys_except(p, "eval.transfer", "targets"),
            instances=lambda p: [{**r, "target": t} for r in runs(p) for t in transfer_targets(p)],
        ),
        Stage(
            name="transfer_finetune", wildcards=("ds", "method", "seed", "target"), outputs={"metrics": TRANSFER_FT},
            inputs=lambda p, wc: {"backbone": fill(BACKBONE, wc), "prepared": fill(PREPARED, {"ds": wc["target"]})},
            params=lambda p, wc: _keys_except(p, "eval.transfer", "targets"),
            instances=lambda p: [{**r, "target": t} for r in runs(p) for t in finetune_targets(p)],
            heavy=True,
        ),
        Stage(
            name="semisup", wildcards=("ds", "method", "seed", "frac"), outputs={"metrics": SEMISUP},
            inputs=lambda p, wc: {"backbone": fill(BACKBONE, wc), "prepared": fill(PREPARED, wc)},
            params=lambda p, wc: _keys_except(p, "eval.semisup", "fractions"), instances=semisup_runs,
            heavy=True,
        ),
        Stage(
            name="detect", wildcards=("ds", "method", "seed"), outputs={"metrics": DETECT},
            inputs=lambda p, wc: {"backbone": fill(BACKBONE, wc), "prepared": fill(PREPARED, {"ds": detection_dataset(p)})},
            params=lambda p, wc: _keys_except(p, "eval.detection", "methods"), instances=detect_runs,
            heavy=True,
        ),
        Stage(
            name="report", wildcards=(),
            outputs={"report": REPORT, "metrics": METRICS, "tables": TABLES, "plots": PLOTS},
            inputs=_report_inputs,
            # The report's text names the methods, seeds and the settings of the run.
            params=lambda p, wc: ["report", "methods", "seeds", "data", "backbone", "pretrain", "eval"],
            instances=lambda p: [{}], metrics=("metrics",),
        ),
    ]
}


# --- code deps: what each job's command imports ----------------------------------------------------

def job_modules(stage: Stage, p: dict, wc: Wc, launched: bool = False) -> tuple[str, ...]:
    extra = tuple(stage.modules(p, wc)) + (("sempos.launch",) if launched and stage.gpus(p) else ())
    return (stage.module,) + extra


def code_files(stage: Stage, p: dict, wc: Wc, launched: bool = False) -> list[str]:
    from .codedeps import code_files as closure_files

    return closure_files(job_modules(stage, p, wc, launched))


@functools.lru_cache(maxsize=None)
def _code_digests(modules: tuple[str, ...]) -> dict[str, str]:
    from .codedeps import code_digests

    return code_digests(modules)


# --- rendering: Snakemake rule files and dvc.yaml ------------------------------------------------------

# Which .smk file holds which stages' rules (python -m sempos.pipeline smk writes them).
RULE_FILES = {"data": ("download", "pack", "prepare"), "pretrain": ("pretrain", "mine"),
              "eval": ("embed", "knn", "linear", "transfer", "transfer_finetune", "semisup", "detect"),
              "report": ("report",)}
RULE_TEMPLATE = """
rule {name}:
    input:
        unpack(SMK.input("{name}")),
    output:
        **SMK.output("{name}"),
    log:
        SMK.log("{name}"),
    params:
        sections=SMK.sections("{name}"),
        code=SMK.code("{name}"),
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
    return {f: "# GENERATED by `python -m sempos.pipeline smk` from the stage table; do not edit.\n"
               + "".join(RULE_TEMPLATE.format(name=n) for n in names) for f, names in RULE_FILES.items()}


def final_targets(p: dict) -> list[str]:
    return [fill(o, {}) for o in STAGES["report"].outputs.values()]


def instance_name(stage: Stage, wc: Wc) -> str:
    return "-".join([stage.name] + ([_job_id(stage.wildcards, wc)] if stage.wildcards else []))


def dvc_plots(p: dict) -> list[dict]:
    """Top-level plots: every method's online kNN curve, so `dvc plots diff` overlays methods and revisions."""
    curves = {fill(HISTORY, r): "knn_top1" for r in runs(p)}
    return [{"knn_vs_epoch": {"x": "epoch", "y": curves, "title": "online kNN monitor (top-1 %) per epoch",
                              "x_label": "epoch", "y_label": "kNN top-1 (%)"}}]


def dvc_yaml(p: dict, params_file: str = "params.yaml") -> dict:
    stages = {}
    for j in all_jobs(p):
        entry: dict = {"cmd": j.stage.command(params_file, j.wc)}
        deps = j.input_files() + code_files(j.stage, p, j.wc)
        if deps:
            entry["deps"] = deps
        keys = j.stage.params(p, j.wc)
        if keys:
            entry["params"] = keys if params_file == "params.yaml" else [{params_file: keys}]
        entry["outs"] = [o for n, o in j.outputs.items() if n not in j.stage.metrics] + [j.record]
        if j.stage.metrics:
            entry["metrics"] = [j.outputs[n] for n in j.stage.metrics]
        stages[j.name] = entry
    return {"stages": stages, "plots": dvc_plots(p)}


DVC_HEADER = ("# GENERATED by `python -m sempos.pipeline dvc -o dvc.yaml` from the stage table (for an overlay: "
              "add --configfile X); do not edit.\n")


def render_dvc(p: dict, params_file: str = "params.yaml") -> str:
    return DVC_HEADER + yaml.safe_dump(dvc_yaml(p, params_file), sort_keys=False, width=120)


def merged_params_name(overlays: list[str]) -> str:
    """params.<overlay stems>.yaml: the file dvc.yaml's stages read when generated for overlays."""
    return "params." + "+".join(Path(o).stem for o in overlays) + ".yaml"


def write_merged_params(p: dict, path: Path, sources: list[str]) -> None:
    from .io import save_text

    header = (f"# GENERATED by `python -m sempos.pipeline dvc` from {' + '.join(sources)}: the params that "
              f"dvc.yaml's stages read.\n# Vary it with `dvc exp run -S {path.name}:KEY=VALUE`; edit the sources "
              f"and regenerate for lasting changes.\n")
    save_text(header + yaml.safe_dump(p, sort_keys=False), path)


def main(argv: list[str] | None = None) -> int:
    from .config import load_params

    ap = argparse.ArgumentParser(prog="python -m sempos.pipeline")
    ap.add_argument("what", choices=["dvc", "smk", "stages"])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--configfile", action="append", default=[], help="overlay(s) merged on top")
    ap.add_argument("--params-out", help="dvc with overlays: where to write the merged params "
                                         "(default: params.<overlay>.yaml beside the output)")
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    args = ap.parse_args(argv)
    if args.what == "smk":
        rules = Path(args.output or "workflow/rules")
        for name, text in render_smk().items():
            (rules / f"{name}.smk").write_text(text)
        return 0
    p = load_params(args.params, args.configfile)
    if args.what == "dvc":
        params_file = args.params
        if args.configfile:
            # The stages must read exactly these merged settings, from a file that DVC tracks by value.
            out_dir = Path(args.output).parent if args.output else Path(".")
            target = Path(args.params_out) if args.params_out else out_dir / merged_params_name(args.configfile)
            write_merged_params(p, target, [args.params, *args.configfile])
            params_file = str(target)
            print(f"wrote {target} (params + {', '.join(args.configfile)})", file=sys.stderr)
        text = render_dvc(p, params_file)
    else:
        text = "\n".join(j.name for j in all_jobs(p)) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


# --- Snakemake view of the same table ------------------------------------------------------------

class SnakemakeView:
    """Input/output/log/params/shell directives of a rule, derived from the stage table.

    Rules record what decides a job's result by value: the params keys it reads (`sections`) and the
    digests of the source files its command imports (`code`), so Snakemake reruns a job when either
    changes. The params file's path is not recorded: the shell template names it as {SMK.params_file},
    which Snakemake formats at run time, so the same settings from another file rerun nothing.
    """

    def __init__(self, config: dict, params_file: str) -> None:
        self.config, self.params_file = config, params_file
        self.python = sys.executable

    def input(self, name: str):
        stage = STAGES[name]
        return lambda wc: stage.inputs(self.config, dict(wc.items()))

    def output(self, name: str) -> dict:
        from snakemake.io import directory

        stage = STAGES[name]
        outs = {n: directory(o.removesuffix("/")) if o.endswith("/") else o for n, o in stage.outputs.items()}
        return {**outs, "record": stage.record}

    def log(self, name: str) -> str:
        return STAGES[name].log

    def sections(self, name: str):
        """The values of the params keys a job reads, as JSON: Snakemake reruns the job when they change."""
        stage = STAGES[name]
        return lambda wc: json.dumps(job(stage, self.config, dict(wc.items())).settings(self.config), sort_keys=True)

    def code(self, name: str):
        """{source file: sha256 prefix} of the job's import closure: Snakemake reruns the job when one changes."""
        stage = STAGES[name]
        return lambda wc: _code_digests(job_modules(stage, self.config, dict(wc.items()), launched=True))

    def threads(self, name: str) -> int:
        return int(self.config["runtime"]["threads"]) if STAGES[name].heavy else 1

    def gpus(self, name: str) -> int:
        return STAGES[name].gpus(self.config)

    def shell(self, name: str) -> str:
        stage = STAGES[name]
        # dvc.yaml's command, run by the interpreter running Snakemake, so `.venv/bin/snakemake` works without
        # an activated venv (a bare `python` would be the system one, without sempos). Interpreter and params
        # file are formatted at run time ({SMK.*}), so neither is part of the rule's recorded code.
        return stage.command("{SMK.params_file}", {k: "{wildcards.%s}" % k for k in stage.wildcards},
                             python="{SMK.python:q}", gpus="{resources.gpu}" if self.gpus(name) else None)


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


if __name__ == "__main__":
    raise SystemExit(main())
