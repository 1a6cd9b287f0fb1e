"""The transfer suite end to end through the real stage commands on two fake targets in their official layouts:
Oxford-IIIT Pets (single-label, mean per-class accuracy, a stratified validation split) and VOC2007
classification (multi-label, 11-point mAP, the devkit's val split); prepare -> embed -> transfer (+ fine-tuning)
-> the papers' transfer table. Also: every catalogued target is selectable in params and in the DAG."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import fake_pretrained, fake_voc_archives, jpeg_bytes, place_downloaded_files, targz

from sempos.config import load_params
from sempos.data import catalog
from sempos.pipeline import dvc_yaml, finetune_targets
from sempos.report import transfer_table
from sempos.stages import embed, prepare, transfer, transfer_finetune
from sempos.stages.common import run_stage

REPO = Path(__file__).resolve().parents[3]
BREEDS = ("Abyssinian", "Bengal", "Birman")  # Pets classes 1..3 (cats: species 1)


def fake_pets(per_class_trainval=10, per_class_test=5, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    images, rows = {}, {"trainval": [], "test": []}
    for c, breed in enumerate(BREEDS):
        for split, n in (("trainval", per_class_trainval), ("test", per_class_test)):
            for _ in range(n):
                image_id = f"{breed}_{len(images) + 1}"
                colour = np.array([40, 40, 40]) + 80 * c
                img = (rng.integers(0, 40, (20, 24, 3)) + colour).clip(0, 255).astype(np.uint8)
                images[f"images/{image_id}.jpg"] = jpeg_bytes(img)
                rows[split].append(f"{image_id} {c + 1} 1 {c + 1}")

    ann = {f"annotations/{s}.txt": ("\n".join(r) + "\n").encode() for s, r in rows.items()}
    return {"images.tar.gz": targz(images), "annotations.tar.gz": targz(ann)}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    place_downloaded_files(tmp_path / "data" / "raw" / "pets", fake_pets())
    voc_files, _ = fake_voc_archives(n_trainval07=24, n_test07=16)
    place_downloaded_files(tmp_path / "data" / "raw" / "voc2007", voc_files)
    params = load_params(REPO / "params.yaml")
    params["runtime"].update(device="cpu", threads=1, precision="fp32", gpus_per_job=0, progress=False)
    params["methods"] = {"random_init": {"algo": "none"}}
    params["eval"]["semisup"]["methods"] = []
    params["eval"]["transfer"].update(targets=["pets", "voc2007"], c_grid=[0.1, 1.0], finetune=True,
                                      finetune_recipe={"recipe": "simclr", "epochs": 1, "lr_grid": [0.05],
                                                       "batch_size": 8})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    fake_pretrained(load_params("params.yaml"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(before)


def stage(module, name, wildcards, **values):
    argv = ["--params", "params.yaml"] + [a for k in wildcards for a in (f"--{k}", str(values[k]))]
    assert run_stage(name, wildcards, module.body, argv) == 0


def test_transfer_stages_on_two_fake_targets(workdir):
    run = {"ds": "fmnist", "method": "random_init", "seed": 0}
    for target in ("pets", "voc2007"):
        stage(prepare, "prepare", ("ds",), ds=target)
        stage(embed, "embed", ("ds", "method", "seed", "target"), **run, target=target)
        stage(transfer, "transfer", ("ds", "method", "seed", "target"), **run, target=target)
    pets = torch.load("data/prepared/pets.pt", weights_only=False)
    # Stored at the backbone's training resolution; a stratified val split (Pets publishes none).
    assert tuple(pets["train_x"].shape[1:]) == (3, 28, 28) and pets["val_split"] == "stratified"
    assert np.bincount(pets["train_y"][pets["splits"]["val"]].numpy()).tolist() == [2, 2, 2]
    voc = torch.load("data/prepared/voc2007.pt", weights_only=False)
    assert voc["val_split"] == "official" and voc["splits"]["val"].tolist() == list(range(1, 24, 2))
    assert tuple(voc["train_y"].shape) == (24, 20)
    m_pets = json.loads(Path("results/transfer/pets/fmnist/random_init/seed0/metrics.json").read_text())
    m_voc = json.loads(Path("results/transfer/voc2007/fmnist/random_init/seed0/metrics.json").read_text())
    assert m_pets["metric"] == "mean_per_class" and m_pets["score"] == m_pets["mean_per_class"]
    assert m_pets["n_val"] == 6 and m_pets["n_test"] == 15 and m_pets["val_split"] == "stratified"
    assert m_voc["metric"] == "voc07_map" and "top1" not in m_voc and m_voc["val_split"] == "official"
    # The classes are colours: even random-init features separate them far above chance.
    assert m_pets["score"] > 60.0 and m_voc["score"] > 60.0
    # Fine-tuning runs on the single-label target only.
    p = load_params("params.yaml")
    assert finetune_targets(p) == ["pets"]
    stage(transfer_finetune, "transfer_finetune", ("ds", "method", "seed", "target"), **run, target="pets")
    ft = json.loads(Path("results/transfer_ft/pets/fmnist/random_init/seed0/metrics.json").read_text())
    assert ft["protocol"] == "finetune" and ft["metric"] == "mean_per_class" and ft["refit"] == "train+val"
    files = {"linear": sorted(Path("results/transfer").glob("*/fmnist/*/seed*/metrics.json")),
             "finetune": sorted(Path("results/transfer_ft").glob("*/fmnist/*/seed*/metrics.json"))}
    lines = transfer_table.section(files, "fmnist", ["random_init"], Path("results/tables"),
                                   lambda df, stem, cap: stem.parent.mkdir(parents=True, exist_ok=True))
    assert any("pets (mean per-class)" in ln and "voc2007 (11-pt mAP)" in ln for ln in lines)
    assert sum("## Transfer from fmnist" in ln for ln in lines) == 2  # linear and fine-tuned tables


def test_every_catalogued_target_is_in_the_schema_and_the_dag():
    schema = yaml.safe_load((REPO / "workflow/schemas/params.schema.yaml").read_text())
    enum = schema["properties"]["eval"]["properties"]["transfer"]["properties"]["targets"]["items"]["enum"]
    assert sorted(enum) == catalog.transfer_targets()
    det = schema["properties"]["eval"]["properties"]["detection"]["properties"]["dataset"]["enum"]
    assert sorted(det) == sorted(["proxy", *catalog.detection_sets()])
    p = load_params(REPO / "params.yaml", [REPO / "config" / "transfer.yaml"])
    assert sorted(p["eval"]["transfer"]["targets"]) == catalog.transfer_targets()  # config/transfer.yaml: all
    stages = dvc_yaml(p)["stages"]
    for t in catalog.transfer_targets():
        ds = catalog.dataset_of_target(t)
        assert f"download-{ds}" in stages and f"prepare-{ds}" in stages and f"embed-fmnist-simclr-seed0-{ds}" in stages
        assert f"transfer-fmnist-simclr-seed0-{t}" in stages
        assert any(d.endswith(f"transfer/{t}/fmnist/simclr/seed0/metrics.json")
                   for d in stages["report"]["deps"])
