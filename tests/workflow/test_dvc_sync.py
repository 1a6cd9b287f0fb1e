"""dvc.yaml is generated from the stage table; this fails when the committed file drifts."""

from pathlib import Path

import yaml

from sempos import pipeline
from sempos.config import deep_merge, load_params
from sempos.pipeline import STAGES, instance_name, render_dvc

REPO = Path(__file__).resolve().parents[2]


def test_committed_dvc_yaml_matches_stage_table():
    expected = render_dvc(load_params(REPO / "params.yaml"))
    committed = (REPO / "dvc.yaml").read_text()
    assert committed == expected, "dvc.yaml is stale: run `make dvc-yaml` (python -m sempos.pipeline dvc -o dvc.yaml)"


def test_every_stage_instance_is_in_dvc_yaml():
    p = load_params(REPO / "params.yaml")
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages = dvc["stages"]
    names = {instance_name(s, wc) for s in STAGES.values() for wc in s.instances(p)}
    assert names == set(stages)
    simclr = stages["pretrain-fmnist-simclr-seed0"]
    assert "methods.simclr" in simclr["params"] and "methods.mocov2" not in simclr["params"]
    assert simclr["outs"] == ["runs/fmnist/simclr/seed0/backbone.pt", "runs/fmnist/simclr/seed0/history.csv",
                             "runs/fmnist/simclr/seed0/positives.json", "runs/fmnist/simclr/seed0/backbone.record.json"]
    # Code deps are the job's import closure: its algorithm, not the others.
    assert "src/sempos/algos/simclr.py" in simclr["deps"] and "src/sempos/algos/nnclr.py" not in simclr["deps"]
    assert "src/sempos/memory_bank.py" in stages["pretrain-fmnist-snclr-seed0"]["deps"]
    assert not [d for d in stages["download-fmnist"]["deps"] if "/algos/" in d or "/train/" in d]
    sepp = stages["pretrain-fmnist-simclr_sepp-seed0"]
    assert "pairs/fmnist/simclr_sepp/seed0.csv" in sepp["deps"]
    assert stages["mine-fmnist-simclr_sepp-seed0"]["deps"][0] == "runs/fmnist/simclr/seed0/backbone.pt"
    # Detection params leave out the list that only picks which runs are detected.
    detected = yaml.safe_load(render_dvc(deep_merge(p, {"eval": {"detection": {"methods": ["simclr"]}}})))["stages"]
    assert "eval.detection.methods" not in detected["detect-fmnist-simclr-seed0"]["params"]
    assert stages["report"]["metrics"] == ["results/metrics.json"]
    assert set(dvc["plots"][0]["knn_vs_epoch"]["y"]) == {f"runs/fmnist/{r['method']}/seed{r['seed']}/history.csv"
                                                         for r in pipeline.runs(p)}
    assert "runs/fmnist/simclr/seed2/history.csv" in dvc["plots"][0]["knn_vs_epoch"]["y"]


def test_committed_rule_files_match_stage_table():
    for name, text in pipeline.render_smk().items():
        path = REPO / "workflow" / "rules" / f"{name}.smk"
        assert path.read_text() == text, f"{path} is stale: run `make dvc-yaml`"


def test_dvc_yaml_for_an_overlay_reads_the_merged_params_it_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "dvc.yaml"
    assert pipeline.main(["dvc", "--configfile", "config/smoke.yaml", "-o", str(out)]) == 0
    merged = tmp_path / "params.smoke.yaml"
    assert yaml.safe_load(merged.read_text()) == load_params("params.yaml", ["config/smoke.yaml"])
    stage = yaml.safe_load(out.read_text())["stages"]["pretrain-fmnist-simclr-seed0"]
    assert f"--params {merged} " in stage["cmd"]
    assert stage["params"] == [{str(merged): ["backbone", "pretrain", "augment", "methods.simclr"]}]


def test_record_and_log_paths_are_unique_and_beside_the_outputs():
    p = load_params(REPO / "params.yaml", [REPO / "config" / "smoke.yaml"])
    jobs = pipeline.all_jobs(p)
    outputs = {o for j in jobs for o in j.output_files()}
    records = [j.record for j in jobs]
    logs = [j.log for j in jobs]
    assert len(set(records)) == len(records) and not set(records) & outputs
    assert len(set(logs)) == len(logs) and all(lg.startswith(f"logs/{j.stage.name}/") for j, lg in zip(jobs, logs))
    j = pipeline.job("semisup", p, {"ds": "fmnist", "method": "snclr", "seed": "0", "frac": "10"})
    assert j.record == "results/semisup/fmnist/snclr/seed0/frac10/metrics.record.json"
    assert j.log == "logs/semisup/fmnist-snclr-seed0-10.log"
    assert pipeline.job("download", p, {"ds": "digits"}).record == "data/raw/digits.record.json"
