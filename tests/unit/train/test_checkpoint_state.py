"""The resume point itself, without training: what Trainer._state holds and what try_resume restores from it.

The kill-and-resume tests show the end result but train for several epochs each; these pin every field in
milliseconds, so a mutant that drops one fails here first."""

import torch

from conftest import fake_prepared, tiny_settings
from sempos.io import save_torch
from sempos.runtime import resolve
from sempos.train.trainer import CHECKPOINT, PretrainJob, Trainer

RT = {"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False}


def _trainer(run_dir, algo="simclr", seed=0, **pretrain):
    settings = tiny_settings(algo)
    settings["pretrain"].update(pretrain)
    return Trainer(PretrainJob(settings, seed, run_dir, fake_prepared()), resolve(RT))


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_state_after_an_epoch_holds_weights_optimiser_history_and_the_global_rng(tmp_path):
    t = _trainer(tmp_path / "run")
    t.history = [{"epoch": 0, "loss": 1.5}]
    rng = torch.get_rng_state()
    st = t._state(3)
    assert set(st) == {"fingerprint", "epoch", "model", "optimizer", "history", "torch_rng"}
    assert st["fingerprint"] == t.fingerprint and st["epoch"] == 3 and st["history"] == [{"epoch": 0, "loss": 1.5}]
    assert _same_tensors(st["model"], t.model.state_dict())
    assert st["optimizer"] == t.optimizer.state_dict() and st["optimizer"]["param_groups"]
    assert torch.equal(st["torch_rng"], rng)
    assert _trainer(tmp_path / "none", algo="none")._state(0)["optimizer"] is None


def test_state_inside_an_epoch_adds_the_step_and_that_epochs_logs_on_the_cpu(tmp_path):
    t = _trainer(tmp_path / "run")
    logs = [{"loss": torch.tensor(2.0)}, {"loss": torch.tensor(1.0), "acc": torch.tensor(0.5)}]
    st = t._state(1, 2, logs)
    assert st["epoch"] == 1 and st["step"] == 2
    assert [{k: float(v) for k, v in d.items()} for d in st["epoch_logs"]] == [{"loss": 2.0}, {"loss": 1.0, "acc": 0.5}]
    assert all(v.device.type == "cpu" for d in st["epoch_logs"] for v in d.values())


def test_resume_restores_every_field_of_the_state(tmp_path):
    src = _trainer(tmp_path / "a")
    with torch.no_grad():
        for p in src.model.parameters():
            p.add_(1.0)  # weights no fresh model has
    src.optimizer.param_groups[0]["lr"] = 0.123
    src.history = [{"epoch": 0, "loss": 3.0}, {"epoch": 1, "loss": 2.0}]
    torch.manual_seed(7)
    state = src._state(1, 4, [{"loss": torch.tensor(0.25)}])
    expected_draw = torch.rand(3)  # what the RNG gives right after the state was taken
    dst = _trainer(tmp_path / "b")
    save_torch(state, tmp_path / "b" / CHECKPOINT)
    torch.manual_seed(99)
    assert dst.try_resume() is True
    assert torch.equal(torch.rand(3), expected_draw)
    assert _same_tensors(dst.model.state_dict(), src.model.state_dict())
    assert dst.optimizer.param_groups[0]["lr"] == 0.123
    assert dst.history == src.history
    assert (dst.start_epoch, dst.start_step) == (2, 4)
    assert [{k: float(v) for k, v in d.items()} for d in dst._resumed_logs] == [{"loss": 0.25}]


def test_resume_after_a_whole_epoch_starts_the_next_one_at_step_zero(tmp_path):
    t = _trainer(tmp_path / "run")
    save_torch(t._state(0), tmp_path / "run" / CHECKPOINT)
    assert t.try_resume() is True
    assert (t.start_epoch, t.start_step, t._resumed_logs) == (1, 0, [])


def test_no_checkpoint_or_another_runs_checkpoint_is_not_resumed(tmp_path):
    t = _trainer(tmp_path / "run")
    assert t.try_resume() is False and (t.start_epoch, t.start_step) == (0, 0)
    other = _trainer(tmp_path / "other", seed=1)  # another seed: another fingerprint
    assert other.fingerprint != t.fingerprint
    save_torch(other._state(5), tmp_path / "run" / CHECKPOINT)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    assert t.try_resume() is False
    assert (t.start_epoch, t.history) == (0, []) and _same_tensors(t.model.state_dict(), before)


def test_an_algorithm_without_an_optimiser_resumes_its_weights_only(tmp_path):
    t = _trainer(tmp_path / "run", algo="none")
    save_torch(t._state(0), tmp_path / "run" / CHECKPOINT)
    assert t.optimizer is None and t.try_resume() is True and t.start_epoch == 1
