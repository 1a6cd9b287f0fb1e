"""dvc.yaml is generated from the stage table; this fails when the committed file drifts."""

from pathlib import Path

import yaml

from sempos.config import load_params
from sempos.pipeline import STAGES, instance_name, render_dvc

REPO = Path(__file__).resolve().parents[2]


def test_committed_dvc_yaml_matches_stage_table():
    expected = render_dvc(load_params(REPO / "params.yaml"))
    committed = (REPO / "dvc.yaml").read_text()
    assert committed == expected, "dvc.yaml is stale: run `make dvc-yaml` (python -m sempos.pipeline dvc -o dvc.yaml)"


def test_every_stage_instance_is_in_dvc_yaml():
    p = load_params(REPO / "params.yaml")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    names = {instance_name(s, wc) for s in STAGES.values() for wc in s.instances(p)}
    assert names == set(stages)
    simclr = stages["pretrain-fmnist-simclr-seed0"]
    assert "methods.simclr" in simclr["params"] and "methods.mocov2" not in simclr["params"]
    assert simclr["outs"] == ["runs/fmnist/simclr/seed0/backbone.pt", "runs/fmnist/simclr/seed0/history.csv",
                             "runs/fmnist/simclr/seed0/positives.json"]
    sepp = stages["pretrain-fmnist-simclr_sepp-seed0"]
    assert "pairs/fmnist/simclr_sepp/seed0.csv" in sepp["deps"]
    assert stages["mine-fmnist-simclr_sepp-seed0"]["deps"][0] == "runs/fmnist/simclr/seed0/backbone.pt"


def test_committed_rule_files_match_stage_table():
    from sempos.pipeline import render_smk

    for name, text in render_smk().items():
        path = REPO / "workflow" / "rules" / f"{name}.smk"
        assert path.read_text() == text, f"{path} is stale: run `make dvc-yaml`"
