"""The stage table: every stage's command, and the inputs/outputs/params of representative instances."""

import shlex
from pathlib import Path

import pytest

from sempos.config import load_params, seeds_of
from sempos import pipeline
from sempos.pipeline import STAGES, dvc_yaml, fill, instance_name

REPO = Path(__file__).resolve().parents[2]
RUN = {"ds": "fmnist", "method": "simclr", "seed": "0"}


@pytest.fixture(scope="module")
def p():
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="module")
def small(p, tmp_path_factory):
    """A valid params file with 25 jobs instead of the default's 128: the CLI tests render it whole, and under
    mutmut (every call traced) the default's DAG made each of `main`'s mutants cost seconds."""
    import yaml

    q = {**p, "seeds": [0], "methods": {m: p["methods"][m] for m in ("random_init", "simclr", "simclr_sepp")},
         "eval": {**p["eval"], "semisup": {**p["eval"]["semisup"], "methods": ["simclr_sepp"]}}}
    path = tmp_path_factory.mktemp("small") / "params.yaml"
    path.write_text(yaml.safe_dump(q, sort_keys=False))
    return path, load_params(path)


def _wc(stage):
    return {k: f"<{k}>" for k in stage.wildcards}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_command_runs_its_stage_module_with_params_and_each_wildcard(name):
    stage = STAGES[name]
    argv = shlex.split(stage.command("cfg/p.yaml", _wc(stage)))
    assert argv[:5] == ["python", "-m", f"sempos.stages.{name}", "--params", "cfg/p.yaml"]
    assert argv[5:] == [t for k in stage.wildcards for t in (f"--{k}", f"<{k}>")]
    assert (REPO / "src" / "sempos" / "stages" / f"{name}.py").exists()


def test_commands_with_gpus_go_through_the_launcher():
    cmd = STAGES["pretrain"].command("p.yaml", RUN, python="py", gpus=2)
    assert cmd == ("py -m sempos.launch --gpus 2 -- py -m sempos.stages.pretrain --params p.yaml "
                   "--ds fmnist --method simclr --seed 0")
    assert STAGES["knn"].command("p.yaml", RUN) == "python -m sempos.stages.knn --params p.yaml --ds fmnist " \
                                                   "--method simclr --seed 0"
    assert STAGES["report"].command("p.yaml", {}) == "python -m sempos.stages.report --params p.yaml"


def test_gpus_are_asked_for_by_heavy_stages_only(p):
    q = {**p, "runtime": {**p["runtime"], "gpus_per_job": 2}}
    assert {n: s.gpus(q) for n, s in STAGES.items() if s.gpus(q)} == \
        {n: 2 for n in ("mine", "pretrain", "embed", "linear", "transfer_finetune", "semisup", "detect")}
    assert STAGES["pretrain"].gpus({**p, "runtime": {"threads": 1}}) == 0


def test_representative_inputs_and_outputs(p):
    sepp = {**RUN, "method": "simclr_sepp"}
    assert STAGES["pretrain"].inputs(p, RUN) == {"prepared": "data/prepared/fmnist.pt"}
    assert STAGES["pretrain"].inputs(p, sepp) == {"prepared": "data/prepared/fmnist.pt",
                                                  "pairs": "pairs/fmnist/simclr_sepp/seed0.csv"}
    assert pipeline.job("pretrain", p, RUN).outputs == {
        "backbone": "runs/fmnist/simclr/seed0/backbone.pt", "history": "runs/fmnist/simclr/seed0/history.csv",
        "positives": "runs/fmnist/simclr/seed0/positives.json"}
    assert STAGES["mine"].inputs(p, sepp) == {"backbone": "runs/fmnist/simclr/seed0/backbone.pt",
                                              "prepared": "data/prepared/fmnist.pt"}
    assert pipeline.job("mine", p, sepp).output_files() == ["pairs/fmnist/simclr_sepp/seed0.csv",
                                                            "pairs/fmnist/simclr_sepp/seed0.json"]
    heldout = {**RUN, "target": "fmnist_heldout"}
    assert STAGES["transfer"].inputs(p, heldout) == {"features": "features/fmnist/simclr/seed0/fmnist.pt"}
    assert fill(STAGES["transfer"].outputs["metrics"], heldout) == \
        "results/transfer/fmnist_heldout/fmnist/simclr/seed0/metrics.json"
    assert STAGES["knn"].inputs(p, RUN) == {"features": "features/fmnist/simclr/seed0/fmnist.pt"}
    assert STAGES["embed"].inputs(p, {**RUN, "target": "cifar10"}) == {
        "backbone": "runs/fmnist/simclr/seed0/backbone.pt", "prepared": "data/prepared/cifar10.pt"}
    assert fill(STAGES["semisup"].outputs["metrics"], {**RUN, "frac": "10"}) == \
        "results/semisup/fmnist/simclr/seed0/frac10/metrics.json"
    assert fill(STAGES["download"].outputs["raw"], {"ds": "fmnist"}) == "data/raw/fmnist"  # a directory
    assert pipeline.final_targets(p) == ["results/report.md", "results/metrics.json", "results/tables",
                                         "results/plots"]


def test_representative_params_sections(p):
    assert STAGES["pretrain"].params(p, RUN) == ["backbone", "pretrain", "augment", "methods.simclr"]
    assert STAGES["mine"].params(p, {**RUN, "method": "simclr_sepp"}) == ["methods.simclr_sepp.positives"]
    assert STAGES["prepare"].params(p, {"ds": "fmnist"}) == ["data"]
    # A transfer target: data.* is not its recipe, only what sets the resolution it is stored at.
    assert STAGES["prepare"].params(p, {"ds": "cifar10"}) == ["data.pretrain", "eval.transfer.image_size"]
    with_size = {**p, "data": {**p["data"], "image_size": 32}}
    assert STAGES["prepare"].params(with_size, {"ds": "cifar10"}) == ["data.pretrain", "data.image_size",
                                                                      "eval.transfer.image_size"]
    assert STAGES["knn"].params(p, RUN) == ["eval.knn"]


def test_instances_follow_methods_seeds_and_sources(p):
    runs = pipeline.runs(p)
    assert len(runs) == sum(len(seeds_of(p, m)) for m in p["methods"]) and RUN in runs
    assert {r["seed"] for r in runs if r["method"] == "random_init"} == {"0"}  # a method's own seeds limit the global ones
    mined = [r["method"] for r in STAGES["mine"].instances(p)]
    assert mined and set(mined) == {m for m in p["methods"] if pipeline.is_mined(p, m)}
    assert "simclr_sepp" in mined and "simclr" not in mined
    assert pipeline._frac(10.0) == "10" and pipeline._frac(0.5) == "0.5"
    assert pipeline.dataset_of_target("fmnist_heldout") == "fmnist"
    report = STAGES["report"].inputs(p, {})
    assert "results/knn/fmnist/simclr/seed0/metrics.json" in report["knn"]
    assert "pairs/fmnist/simclr_sepp/seed0.json" in report["pairs"]
    assert "pairs/fmnist/simclr/seed0.json" not in report["pairs"]


def test_dvc_entries_name_the_params_file_when_it_is_not_the_default(small):
    p = small[1]
    entry = dvc_yaml(p, "cfg/p.yaml")["stages"]["knn-fmnist-simclr-seed0"]
    assert entry["cmd"].split()[3:5] == ["--params", "cfg/p.yaml"]
    assert entry["params"] == [{"cfg/p.yaml": ["eval.knn"]}]
    assert entry["deps"][0] == "features/fmnist/simclr/seed0/fmnist.pt"
    assert dvc_yaml(p)["stages"]["knn-fmnist-simclr-seed0"]["params"] == ["eval.knn"]
    assert instance_name(STAGES["semisup"], {**RUN, "frac": "1"}) == "semisup-fmnist-simclr-seed0-1"
    assert instance_name(STAGES["report"], {}) == "report"


def test_snakemake_rules_take_the_command_from_the_table(monkeypatch):
    view = pipeline.SnakemakeView({"runtime": {"threads": 3, "gpus_per_job": 0}}, "p.yaml")
    shell = shlex.split(view.shell("knn"))
    import sys

    # The interpreter running Snakemake (not whatever `python` is on PATH) and the params file, both formatted
    # at run time, so neither is part of the rule's recorded code.
    assert shell[0] == "{SMK.python:q}" and view.python == sys.executable
    assert shell[1:] == ["-m", "sempos.stages.knn", "--params", "{SMK.params_file}", "--ds", "{wildcards.ds}",
                         "--method", "{wildcards.method}", "--seed", "{wildcards.seed}"]
    assert view.threads("pretrain") == 3 and view.threads("knn") == 1
    gpu = pipeline.SnakemakeView({"runtime": {"threads": 1, "gpus_per_job": 1}}, "p.yaml")
    assert "-m sempos.launch --gpus {resources.gpu} --" in gpu.shell("pretrain")
    monkeypatch.setitem(pipeline.RULE_FILES, "eval", ("embed",))
    with pytest.raises(RuntimeError, match="knn"):
        pipeline.render_smk()


def test_snakemake_view_reads_inputs_outputs_and_param_sections_from_the_table(p):
    import json

    class Wildcards(dict):
        pass

    view = pipeline.SnakemakeView(p, "params.yaml")
    wc = Wildcards({**RUN, "method": "simclr_sepp"})
    assert view.input("pretrain")(wc) == {"prepared": "data/prepared/fmnist.pt",
                                          "pairs": "pairs/fmnist/simclr_sepp/seed0.csv"}
    sections = json.loads(view.sections("mine")(wc))
    assert sections == {"methods.simclr_sepp.positives": p["methods"]["simclr_sepp"]["positives"]}
    assert json.loads(view.sections("knn")(Wildcards(RUN))) == {"eval.knn": p["eval"]["knn"]}
    outs = view.output("report")
    assert outs["report"] == "results/report.md" and str(outs["tables"]) == "results/tables"
    assert getattr(outs["tables"], "flags", {}).get("directory")  # Snakemake's directory() marks the folders
    assert getattr(outs["plots"], "flags", {}).get("directory")
    assert view.output("knn") == {"metrics": "results/knn/{ds}/{method}/seed{seed}/metrics.json",
                                  "record": "results/knn/{ds}/{method}/seed{seed}/metrics.record.json"}
    assert not getattr(view.output("knn")["metrics"], "flags", {}).get("directory")  # a file, not a folder
    # Sections are dumped with sorted keys, so the rule's params string is stable across runs.
    scrambled = {**p, "data": dict(reversed(list(p["data"].items())))}
    text = pipeline.SnakemakeView(scrambled, "params.yaml").sections("prepare")(Wildcards({"ds": "fmnist"}))
    assert text == json.dumps({"data": p["data"]}, sort_keys=True)


def test_snakemake_params_file_is_params_yaml_itself_or_one_merged_copy(tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)
    from sempos.config import digest

    config = {"b": {"c": [1, 2]}, "a": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(config))
    assert pipeline.snakemake_params_file(config) == "params.yaml"
    merged = {**config, "a": 2}
    path = pipeline.snakemake_params_file(merged)
    assert path == f".sempos/params-{digest(merged)}.yaml"
    assert Path(path).read_text() == "b:\n  c:\n  - 1\n  - 2\na: 2\n"  # the config's own key order
    assert pipeline.snakemake_params_file(merged) == path  # the same config, the same file
    assert pipeline.snakemake_params_file(config, default="missing.yaml") != "missing.yaml"


def test_cli_writes_dvc_yaml_rule_files_and_the_stage_list(tmp_path, small):
    import yaml

    path, q = small
    assert pipeline.main(["dvc", "--params", str(path), "-o", str(tmp_path / "dvc.yaml")]) == 0
    text = (tmp_path / "dvc.yaml").read_text()
    assert text.startswith("# GENERATED") and yaml.safe_load(text) == dvc_yaml(q, str(path))
    (tmp_path / "rules").mkdir()
    assert pipeline.main(["smk", "-o", str(tmp_path / "rules")]) == 0
    assert sorted(f.name for f in (tmp_path / "rules").iterdir()) == sorted(f"{n}.smk" for n in pipeline.RULE_FILES)
    assert (tmp_path / "rules" / "eval.smk").read_text() == pipeline.render_smk()["eval"]
    assert pipeline.main(["stages", "--params", str(path), "-o", str(tmp_path / "s.txt")]) == 0
    names = (tmp_path / "s.txt").read_text().splitlines()
    assert len(names) == 25 and names == [instance_name(s, wc) for s in STAGES.values() for wc in s.instances(q)]
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"seeds": [0, 1]}))
    pipeline.main(["stages", "--params", str(path), "--configfile", str(over), "-o", str(tmp_path / "s2.txt")])
    assert "pretrain-fmnist-simclr-seed1" in (tmp_path / "s2.txt").read_text().split()


def test_cli_prints_to_stdout_without_an_output_file(capsys, small):
    path, q = small
    assert pipeline.main(["stages", "--params", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [instance_name(s, wc) for s in STAGES.values() for wc in s.instances(q)]


def test_cli_defaults_to_params_yaml_and_workflow_rules_and_rejects_unknown_commands(tmp_path, monkeypatch, small):
    import shutil

    path, q = small
    monkeypatch.chdir(tmp_path)
    shutil.copy(path, tmp_path / "params.yaml")
    (tmp_path / "workflow" / "rules").mkdir(parents=True)
    assert pipeline.main(["smk"]) == 0 and (tmp_path / "workflow/rules/eval.smk").exists()
    assert pipeline.main(["stages", "-o", "s.txt"]) == 0  # --params defaults to ./params.yaml
    assert (tmp_path / "s.txt").read_text().split() == [instance_name(s, wc) for s in STAGES.values()
                                                       for wc in s.instances(q)]
    with pytest.raises(SystemExit):
        pipeline.main(["render"])


def test_snakemake_code_digests_are_the_jobs_import_closure_plus_the_launcher_when_it_runs_on_gpus(p):
    from sempos.codedeps import code_digests, file_sha256

    class Wildcards(dict):
        pass

    wc = Wildcards({**RUN, "method": "simclr_sepp"})
    cpu = pipeline.SnakemakeView(p, "params.yaml").code("pretrain")(wc)
    modules = pipeline.job_modules(STAGES["pretrain"], p, dict(wc))
    assert modules[0] == "sempos.stages.pretrain" and cpu == code_digests(modules)
    assert cpu["src/sempos/stages/pretrain.py"] == file_sha256(REPO / "src/sempos/stages/pretrain.py")[:16]
    assert "src/sempos/launch.py" not in cpu
    gpu_p = {**p, "runtime": {**p["runtime"], "gpus_per_job": 1}}
    gpu = pipeline.SnakemakeView(gpu_p, "params.yaml").code("pretrain")(wc)
    assert set(gpu) - set(cpu) == {"src/sempos/launch.py"}
    # a light stage never gets a GPU, so it is never launched
    knn = pipeline.SnakemakeView(gpu_p, "params.yaml").code("knn")(Wildcards(RUN))
    assert "src/sempos/launch.py" not in knn and "src/sempos/stages/knn.py" in knn


def test_producers_map_every_output_to_the_one_job_that_writes_it(p):
    prod = pipeline.producers(p)
    knn = prod["results/knn/fmnist/simclr/seed0/metrics.json"]
    assert knn.stage is STAGES["knn"] and knn.wc == RUN
    assert prod["data/prepared/fmnist.pt"].stage is STAGES["prepare"]
    assert set(prod) == {out for j in pipeline.all_jobs(p) for out in j.output_files()}


def test_merged_params_keep_the_overlays_key_order_and_name_every_source(tmp_path):
    import yaml

    assert pipeline.merged_params_name(["config/a.yaml", "x/b.yml"]) == "params.a+b.yaml"
    merged = {"zeta": 1, "alpha": {"y": 2, "b": 3}}
    out = tmp_path / "params.a+b.yaml"
    pipeline.write_merged_params(merged, out, ["params.yaml", "config/a.yaml"])
    text = out.read_text()
    assert text.startswith("# GENERATED by `python -m sempos.pipeline dvc` from params.yaml + config/a.yaml: ")
    assert "dvc exp run -S params.a+b.yaml:KEY=VALUE" in text
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == ["zeta: 1", "alpha:", "  y: 2", "  b: 3"] and yaml.safe_load(text) == merged


def test_dvc_with_an_overlay_writes_the_merged_params_beside_the_output_or_where_asked(tmp_path, monkeypatch,
                                                                                       capsys, small):
    import yaml

    path = small[0]
    over = tmp_path / "two.yaml"
    over.write_text(yaml.safe_dump({"seeds": [0]}))
    monkeypatch.chdir(tmp_path)
    # without -o: the merged params land in the working directory and dvc.yaml goes to stdout
    assert pipeline.main(["dvc", "--params", str(path), "--configfile", str(over)]) == 0
    out, err = capsys.readouterr()
    assert (tmp_path / "params.two.yaml").exists() and "--params params.two.yaml" in out
    assert err == f"wrote params.two.yaml (params + {over})\n"
    # with --params-out: there, and the stages read that file
    (tmp_path / "d").mkdir()
    assert pipeline.main(["dvc", "--params", str(path), "--configfile", str(over),
                          "--params-out", "sub.yaml", "-o", str(tmp_path / "d" / "dvc.yaml")]) == 0
    assert "--params sub.yaml" in (tmp_path / "d" / "dvc.yaml").read_text()
    assert yaml.safe_load((tmp_path / "sub.yaml").read_text())["seeds"] == [0]


def test_dvc_with_two_overlays_merges_both_in_order_and_names_each(tmp_path, monkeypatch, capsys, small):
    import yaml

    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"seeds": [0, 1], "eval": {"knn": {"k": 7}}}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"seeds": [0, 2]}))
    monkeypatch.chdir(tmp_path)
    assert pipeline.main(["dvc", "--params", str(small[0]), "--configfile", "a.yaml", "--configfile", "b.yaml",
                          "-o", "out/dvc.yaml"]) == 0
    assert capsys.readouterr().err == "wrote out/params.a+b.yaml (params + a.yaml, b.yaml)\n"
    merged = yaml.safe_load((tmp_path / "out/params.a+b.yaml").read_text())
    assert merged["seeds"] == [0, 2] and merged["eval"]["knn"]["k"] == 7  # b wins where both set a key
    assert "--params out/params.a+b.yaml" in (tmp_path / "out/dvc.yaml").read_text()


def test_detection_runs_on_the_pretraining_datasets_proxy_unless_a_dataset_is_named(p):
    q = {**p, "eval": {**p["eval"], "detection": {k: v for k, v in p["eval"]["detection"].items() if k != "dataset"}}}
    assert pipeline.detection_dataset(q) == p["data"]["pretrain"] == "fmnist"
    q["eval"]["detection"]["dataset"] = "voc"
    assert pipeline.detection_dataset(q) == "voc"


def test_help_documents_the_command_and_every_option(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the usage on one line (argparse wraps at the terminal's width)
    with pytest.raises(SystemExit) as exit_:
        pipeline.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m sempos.pipeline [-h] ")
    words = " ".join(out.split())  # each option followed by its help, however argparse lays them out
    assert "--configfile CONFIGFILE overlay(s) merged on top --params-out" in words
    assert ("--params-out PARAMS_OUT dvc with overlays: where to write the merged params "
            "(default: params.<overlay>.yaml beside the output) -o") in words
    assert words.endswith(" -o OUTPUT, --output OUTPUT write here instead of stdout")


def test_dvc_yaml_lines_break_after_the_word_that_passes_column_120(small):
    # "    cmd: python -m sempos.stages.knn --params " is 46 characters: this name ends the word at column 121.
    params_file = "cfg/" + "p" * 66 + ".yaml"
    lines = pipeline.render_dvc(small[1], params_file).splitlines()
    at = lines.index("  knn-fmnist-simclr-seed0:")
    assert lines[at + 1:at + 3] == [f"    cmd: python -m sempos.stages.knn --params {params_file}",
                                    "      --ds fmnist --method simclr --seed 0"]
    assert len(lines[at + 1]) == 121


def _imagenet100(p, **data):
    """The default params with ImageNet-100 (an encoded dataset) as the pretraining set."""
    return {**p, "data": {**{k: v for k, v in p["data"].items() if k != "semi_fractions"},
                          "pretrain": "imagenet100", **data}}


def test_download_records_the_copys_root_and_subset_lists_of_an_encoded_pretraining_set_only(p):
    params = STAGES["download"].params
    q = _imagenet100(p, root="/data/in100", semi_fractions=[1, 10])
    assert params(q, {"ds": "imagenet100"}) == ["data.root", "data.semi_fractions"]
    assert params(_imagenet100(p, root="/data/in100"), {"ds": "imagenet100"}) == ["data.root"]
    assert params(_imagenet100(p), {"ds": "imagenet100"}) == []
    assert params(q, {"ds": "imagenet"}) == []  # encoded, but not what this run pretrains on
    assert params(q, {"ds": "digits"}) == []  # a transfer target: a tensor dataset
    assert params(p, {"ds": "fmnist"}) == []  # the pretraining set, but not encoded


def test_encoded_datasets_are_packed_and_prepared_from_their_shards(p):
    q = _imagenet100(p)
    assert pipeline.needed_datasets(q) == ["digits", "imagenet100"]
    assert pipeline.encoded_datasets(q) == ["imagenet100"]
    assert STAGES["pack"].instances(q) == [{"ds": "imagenet100"}]
    assert pipeline.encoded_datasets(p) == [] and STAGES["pack"].instances(p) == []
    prepare = STAGES["prepare"].inputs
    assert prepare(q, {"ds": "imagenet100"}) == {"raw": "data/raw/imagenet100",
                                                 "shards": "data/shards/imagenet100.pt"}
    assert prepare(q, {"ds": "digits"}) == {"raw": "data/raw/digits"}


def test_linear_probe_reads_features_or_with_the_augmented_protocol_the_backbone_and_images(p):
    linear = {k: v for k, v in p["eval"]["linear"].items() if k != "protocol"}
    def with_protocol(**proto):
        return {**p, "eval": {**p["eval"], "linear": {**linear, **proto}}}

    features = {"features": "features/fmnist/simclr/seed0/fmnist.pt"}
    assert STAGES["linear"].inputs(with_protocol(), RUN) == features  # the default protocol
    assert STAGES["linear"].inputs(with_protocol(protocol="features"), RUN) == features
    assert STAGES["linear"].inputs(with_protocol(protocol="augmented"), RUN) == {
        "backbone": "runs/fmnist/simclr/seed0/backbone.pt", "prepared": "data/prepared/fmnist.pt"}


def test_finetuning_runs_on_single_label_dataset_targets_only_when_asked(p):
    def transfer(**kw):
        return {**p, "eval": {**p["eval"], "transfer": {**p["eval"]["transfer"], **kw}}}

    targets = ["cifar10", "fmnist_heldout", "voc2007", "digits"]  # a derived split, a multi-label set
    assert pipeline.finetune_targets(transfer(targets=targets, finetune=True)) == ["cifar10", "digits"]
    assert pipeline.finetune_targets(transfer(targets=targets, finetune=False)) == []
    no_key = {k: v for k, v in transfer(targets=targets)["eval"]["transfer"].items() if k != "finetune"}
    assert pipeline.finetune_targets({**p, "eval": {**p["eval"], "transfer": no_key}}) == []


def test_a_jobs_code_deps_include_the_launcher_only_when_launched_on_gpus(p):
    gpu_p = {**p, "runtime": {**p["runtime"], "gpus_per_job": 1}}
    stage = STAGES["pretrain"]
    assert pipeline.job_modules(stage, gpu_p, RUN) == ("sempos.stages.pretrain", "sempos.algos.simclr")
    assert pipeline.job_modules(stage, gpu_p, RUN, True) == ("sempos.stages.pretrain", "sempos.algos.simclr",
                                                              "sempos.launch")
    assert pipeline.job_modules(stage, p, RUN, True) == ("sempos.stages.pretrain", "sempos.algos.simclr")
    # dvc.yaml runs the stage module itself; Snakemake's rules wrap it in the launcher
    assert "src/sempos/launch.py" not in pipeline.code_files(stage, gpu_p, RUN)
    launched = pipeline.code_files(stage, gpu_p, RUN, launched=True)
    assert set(launched) - set(pipeline.code_files(stage, gpu_p, RUN)) == {"src/sempos/launch.py"}


def test_the_report_reads_every_result_of_the_dag_by_kind_in_run_order(small):
    q = small[1]  # seed 0 of random_init, simclr, simclr_sepp; semisup on simclr_sepp; transfer to digits
    q = {**q, "eval": {**q["eval"], "transfer": {**q["eval"]["transfer"], "finetune": True},
                       "detection": {**q["eval"]["detection"], "methods": ["simclr"]}}}
    runs = ["random_init/seed0", "simclr/seed0", "simclr_sepp/seed0"]
    assert STAGES["report"].inputs(q, {}) == {
        "history": [f"runs/fmnist/{r}/history.csv" for r in runs],
        "positives": [f"runs/fmnist/{r}/positives.json" for r in runs],
        "knn": [f"results/knn/fmnist/{r}/metrics.json" for r in runs],
        "linear": [f"results/linear/fmnist/{r}/metrics.json" for r in runs],
        "transfer": [f"results/transfer/digits/fmnist/{r}/metrics.json" for r in runs],
        "transfer_ft": [f"results/transfer_ft/digits/fmnist/{r}/metrics.json" for r in runs],
        "semisup": ["results/semisup/fmnist/simclr_sepp/seed0/frac10/metrics.json"],
        "detect": ["results/detect/fmnist/simclr/seed0/metrics.json"],
        "pairs": ["pairs/fmnist/simclr_sepp/seed0.json"],
    }


def test_a_jobs_record_sits_beside_its_first_output(p):
    assert STAGES["download"].record == "data/raw/{ds}.record.json"  # beside the directory, not in it
    assert STAGES["pretrain"].record == "runs/{ds}/{method}/seed{seed}/backbone.record.json"
    assert pipeline.job("download", p, {"ds": "fmnist"}).record == "data/raw/fmnist.record.json"
    # a directory's dots are part of its name, a file's suffix is not
    dotted = pipeline.Stage("x", (), {"out": "results/v1.2/"}, lambda p, wc: {}, lambda p, wc: [], lambda p: [{}])
    assert dotted.record == "results/v1.2.record.json"
