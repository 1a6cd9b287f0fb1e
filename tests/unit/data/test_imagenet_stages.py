"""config/imagenet.yaml's data path end to end on a fake ILSVRC-2012 in the official layout: download (md5s),
pack, prepare (SimCLR-style 1 % list), pretrain SimCLR and its SePP-ID variant, mine, embed, kNN, MoCo's linear
protocol and semi-supervised fine-tuning, run in-process by the real stage CLIs."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import fake_ilsvrc

from sempos.config import load_params
from sempos.data import imagenet_subsets
from sempos.data.spec import RemoteFile
from sempos.stages import download, embed, knn, linear, mine, pack, prepare, pretrain, semisup
from sempos.stages.common import run_stage

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def stage(module, name, wildcards, **values):
    argv = ["--params", "params.yaml"] + [a for k in wildcards for a in (f"--{k}", str(values[k]))]
    assert run_stage(name, wildcards, module.body, argv) == 0, name


@pytest.fixture
def workdir(tmp_path, monkeypatch, ilsvrc_patch):
    facts = fake_ilsvrc(tmp_path / "data" / "imagenet", per_class=16, val_per_class=4)
    ilsvrc_patch(facts)
    # A fake 1 % list: 3 train images per class, pinned by its sha256 like SimCLR's.
    listed = [n.split("/")[1] for n in facts["train_names"]][::5][:12]
    text = "".join(f"{n}\n" for n in listed).encode()
    raw = tmp_path / "data" / "raw" / "imagenet"
    raw.mkdir(parents=True)
    (raw / "1percent.txt").write_bytes(text)
    monkeypatch.setitem(imagenet_subsets.SUBSET_FILES, 1, RemoteFile("1percent.txt",
                                                                     sha256=(hashlib.sha256(text).hexdigest(),)))
    monkeypatch.setitem(imagenet_subsets.EXPECTED_LINES, 1, len(listed))

    params = load_params(REPO / "params.yaml", [REPO / "config" / "imagenet.yaml"])
    params["runtime"].update(device="cpu", threads=1, precision="fp32", gpus_per_job=0, progress=False,
                             loader_workers=0)
    params["data"].update(image_size=32, eval_resize=36, val_size=8, semi_fractions=[1],
                          pack={"max_side": 48, "quality": 90, "shard_images": 20})
    params["backbone"] = {"arch": "resnet18_cifar", "width": 4}
    params["pretrain"].update(epochs=1, batch_size=16, warmup_epochs=0, knn_monitor=16)
    sepp = {"source": "mined", "from": "simclr", "mix": "add", "k": 2, "k_max": 4, "equal_steps": False,
            "dup_threshold": None}
    params["methods"] = {"random_init": {"algo": "none"}, "simclr": {"algo": "simclr", "temperature": 0.1},
                         "simclr_sepp": {"algo": "simclr", "temperature": 0.1, "positives": sepp}}
    params["eval"]["linear"].update(epochs=2, batch_size=16)
    params["eval"]["semisup"].update(fractions=[1], epochs={"1": 1}, lr_grid=[0.1], batch_size=8)
    params["eval"]["detection"]["methods"] = ["random_init"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path, listed


def test_imagenet_overlay_runs_every_stage_on_a_fake_ilsvrc(workdir):
    tmp, listed = workdir
    stage(download, "download", ("ds",), ds="imagenet")
    manifest = json.loads((tmp / "data/raw/imagenet/MANIFEST.json").read_text())
    assert manifest["layout"] == "archives" and manifest["subset_lists"] == {"1": "1percent.txt"}
    stage(pack, "pack", ("ds",), ds="imagenet")
    shards = sorted(p.name for p in (tmp / "data/shards/imagenet").glob("*.bin"))
    assert shards == ["test-00000.bin"] + [f"train-{k:05d}.bin" for k in range(4)]
    stage(prepare, "prepare", ("ds",), ds="imagenet")

    from sempos.data.prepare import load_prepared

    data = load_prepared(tmp / "data/prepared/imagenet.pt")
    assert len(data["train_x"]) == 64 and len(data["test_x"]) == 16 and data["train_x"].shape[1:] == (3, 32, 32)
    names = data["train_x"].names()
    semi = data["splits"]["semi"]["1"]
    assert sorted(names[i].split("/")[1] for i in semi.tolist()) == sorted(listed)  # the list, not a draw
    assert not set(semi.tolist()) & set(data["splits"]["val"].tolist())
    assert int(data["train_x"].sizes().max()) <= 60 and int(data["train_x"].sizes().min(1).values.max()) <= 48

    for method in ("simclr", "random_init"):
        stage(pretrain, "pretrain", ("ds", "method", "seed"), ds="imagenet", method=method, seed=0)
    stage(mine, "mine", ("ds", "method", "seed"), ds="imagenet", method="simclr_sepp", seed=0)
    stage(pretrain, "pretrain", ("ds", "method", "seed"), ds="imagenet", method="simclr_sepp", seed=0)
    pos = json.loads((tmp / "runs/imagenet/simclr_sepp/seed0/positives.json").read_text())
    assert pos["extra_pairs"] > 0 and pos["num_pairs"] == 56 + pos["extra_pairs"]
    hist = (tmp / "runs/imagenet/simclr/seed0/history.csv").read_text().splitlines()
    assert len(hist) == 3 and hist[0].startswith("epoch,loss,knn_top1")  # epochs 0 and 1, with the kNN monitor
    ckpt = torch.load(tmp / "runs/imagenet/simclr/seed0/backbone.pt", weights_only=False)
    assert ckpt["meta"]["image_size"] == 32 and ckpt["meta"]["norm_mean"] == pytest.approx([0.485, 0.456, 0.406])

    run = dict(ds="imagenet", method="simclr_sepp", seed=0)
    stage(embed, "embed", ("ds", "method", "seed", "target"), target="imagenet", **run)
    feats = torch.load(tmp / "features/imagenet/simclr_sepp/seed0/imagenet.pt", weights_only=False)
    assert feats["train_f"].shape == (56, 32) and feats["test_f"].shape == (16, 32)
    stage(knn, "knn", ("ds", "method", "seed"), **run)
    stage(linear, "linear", ("ds", "method", "seed"), **run)
    stage(semisup, "semisup", ("ds", "method", "seed", "frac"), frac="1", **run)
    out = {k: json.loads((tmp / f"results/{k}/imagenet/simclr_sepp/seed0/{sub}metrics.json").read_text())
           for k, sub in (("knn", ""), ("linear", ""), ("semisup", "frac1/"))}
    assert all(0 <= out[k]["top1"] <= 100 for k in out)
    assert out["linear"]["protocol"] == "augmented" and out["linear"]["lr"] == 30.0
    assert out["semisup"]["labelled_images"] == len(listed)


def test_a_pretrain_without_packed_data_names_the_missing_stage(workdir):
    assert run_stage("prepare", ("ds",), prepare.body, ["--params", "params.yaml", "--ds", "imagenet"]) == 2
