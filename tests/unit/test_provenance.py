"""Job records: a stage refuses inputs that are missing, corrupt, or made with other settings, in one line."""

import json
from pathlib import Path

import pytest

from sempos import provenance
from sempos.config import deep_merge, load_params
from sempos.errors import InputError
from sempos.pipeline import job

REPO = Path(__file__).resolve().parents[2]
RUN = {"ds": "fmnist", "method": "simclr", "seed": "0"}


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("data/raw/fmnist").mkdir(parents=True)
    Path("data/raw/fmnist/MANIFEST.json").write_text("{}")  # a download (no settings, no record needed)
    return load_params(REPO / "params.yaml", [REPO / "config" / "smoke.yaml"])


def make(p, stage, wc, content=b"x"):
    """Write every output of a job (fake bytes) and its record, as the stage would."""
    j = job(stage, p, wc)
    for f in j.output_files():
        Path(f).parent.mkdir(parents=True, exist_ok=True)
        Path(f).write_bytes(content + f.encode())
    provenance.write_record(p, j)
    return j


def test_inputs_made_with_the_same_settings_pass(smoke):
    make(smoke, "prepare", {"ds": "fmnist"})
    rec = json.loads(Path("data/prepared/fmnist.record.json").read_text())
    assert rec["settings"] == {"data": smoke["data"]} and set(rec["outputs"]) == {"data/prepared/fmnist.pt"}
    provenance.check_inputs(smoke, job("pretrain", smoke, RUN))


def test_other_settings_are_named_with_both_values(smoke):
    make(smoke, "prepare", {"ds": "fmnist"})
    default = load_params(REPO / "params.yaml")
    with pytest.raises(InputError) as err:
        provenance.check_inputs(default, job("pretrain", default, RUN), "params.yaml")
    msg = str(err.value)
    assert "data/prepared/fmnist.pt was made with other settings than params.yaml" in msg
    assert f"data.train_subset 384 -> {default['data']['train_subset']}" in msg and "snakemake data/prepared/fmnist.pt" in msg
    assert "\n" not in msg


def test_a_corrupt_or_unrecorded_input_is_named(smoke):
    make(smoke, "prepare", {"ds": "fmnist"})
    f = Path("data/prepared/fmnist.pt")
    f.write_bytes(b"y" + f.read_bytes()[1:])
    with pytest.raises(InputError, match="data/prepared/fmnist.pt is not the file prepare-fmnist wrote"):
        provenance.check_inputs(smoke, job("pretrain", smoke, RUN))
    Path("data/prepared/fmnist.record.json").unlink()
    with pytest.raises(InputError, match="has no record of how it was made"):
        provenance.check_inputs(smoke, job("pretrain", smoke, RUN))


def test_an_upstream_change_makes_downstream_outputs_stale(smoke):
    make(smoke, "prepare", {"ds": "fmnist"})
    make(smoke, "pretrain", RUN)
    embed = job("embed", smoke, {**RUN, "target": "fmnist"})
    provenance.check_inputs(smoke, embed)
    make(smoke, "prepare", {"ds": "fmnist"}, content=b"other data")  # prepare reran; pretraining did not
    with pytest.raises(InputError, match="runs/fmnist/simclr/seed0/backbone.pt is out of date: "
                                         "data/prepared/fmnist.pt changed after pretrain-fmnist-simclr-seed0 read it"):
        provenance.check_inputs(smoke, embed)


def test_settings_of_a_job_further_up_are_checked_too(smoke):
    make(smoke, "prepare", {"ds": "fmnist"})
    make(smoke, "pretrain", RUN)
    make(smoke, "embed", {**RUN, "target": "fmnist"})
    hotter = deep_merge(smoke, {"methods": {"simclr": {"temperature": 0.5}}})
    with pytest.raises(InputError, match=r"backbone.pt was made with other settings.*methods.simclr.temperature "
                                         r"0.2 -> 0.5"):
        provenance.check_inputs(hotter, job("knn", hotter, RUN))
    # Only simclr's chain is affected: mocov2's inputs still pass.
    make(smoke, "pretrain", {**RUN, "method": "mocov2"})
    provenance.check_inputs(hotter, job("embed", hotter, {**RUN, "method": "mocov2", "target": "fmnist"}))


def test_missing_inputs_are_listed(smoke):
    with pytest.raises(InputError, match=r"knn-fmnist-simclr-seed0 needs 1 input\(s\) that do not exist: "
                                         r"features/fmnist/simclr/seed0/fmnist.pt"):
        provenance.check_inputs(smoke, job("knn", smoke, RUN))


def test_is_current_follows_settings_and_inputs(smoke):
    make(smoke, "prepare", {"ds": "fmnist"})
    j = make(smoke, "pretrain", RUN)
    assert provenance.is_current(smoke, j) == (True, "")
    hotter = deep_merge(smoke, {"methods": {"simclr": {"temperature": 0.5}}})
    assert provenance.is_current(hotter, job("pretrain", hotter, RUN)) == (False, "settings changed")
    make(smoke, "prepare", {"ds": "fmnist"}, content=b"other")
    assert provenance.is_current(smoke, j) == (False, "data/prepared/fmnist.pt changed")


def test_a_stage_run_by_hand_prints_one_line(smoke, capsys):
    from sempos.stages import knn
    from sempos.stages.common import run_stage

    Path("params.yaml").write_text(json.dumps(smoke))
    argv = ["--params", "params.yaml", "--ds", "fmnist", "--method", "simclr", "--seed", "0"]
    assert run_stage("knn", ("ds", "method", "seed"), knn.body, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sempos knn: error: knn-fmnist-simclr-seed0 needs 1 input(s) that do not exist: "
                   "features/fmnist/simclr/seed0/fmnist.pt; make them first: snakemake "
                   "results/knn/fmnist/simclr/seed0/metrics.json"]
    assert "error: knn-fmnist-simclr-seed0 needs" in Path("logs/knn/fmnist-simclr-seed0.log").read_text()
    assert run_stage("knn", ("ds", "method", "seed"), knn.body, argv[:5] + ["ghost", "--seed", "0"]) == 2
    assert "knn-fmnist-ghost-seed0 is not a job of params.yaml" in capsys.readouterr().err
