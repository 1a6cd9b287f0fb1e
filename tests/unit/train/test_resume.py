"""A killed run resumes from its last checkpoint and ends with the same weights as an uninterrupted run."""

import pytest
import torch

from conftest import fake_prepared, tiny_settings
from sempos.runtime import resolve
from sempos.train.trainer import CHECKPOINT, PretrainJob, Trainer

RT = {"device": "cpu", "threads": 2, "precision": "fp32", "channels_last": False, "progress": False}


class Killed(Exception):
    pass


def _run(settings, run_dir, data, on_step=None):
    trainer = Trainer(PretrainJob(settings, seed=3, run_dir=run_dir, data=data, on_step=on_step), resolve(RT))
    trainer.fit()
    return trainer


@pytest.mark.parametrize("algo,hp", [("simclr", {}), ("mocov2", {"queue_size": 64})])
def test_kill_and_resume_gives_identical_weights(tmp_path, algo, hp):
    prepared = fake_prepared(n_train=160)  # 128 pretraining images: 4 steps of 32 per epoch
    settings = tiny_settings(algo, epochs=3, proj_hidden=32, proj_dim=16, **hp)
    straight = _run(settings, tmp_path / "straight", prepared)

    def kill(epoch, step):
        if epoch == 1 and step == 2:
            raise Killed

    with pytest.raises(Killed):
        _run(settings, tmp_path / "resumed", prepared, on_step=kill)
    assert (tmp_path / "resumed" / CHECKPOINT).exists()
    assert not (tmp_path / "resumed" / "backbone.pt").exists(), "a killed run must not look complete"
    resumed = _run(settings, tmp_path / "resumed", prepared)
    assert resumed.start_epoch == 1
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    assert [h["loss"] for h in straight.history[1:]] == [h["loss"] for h in resumed.history[1:]]


def test_checkpoint_from_other_settings_is_not_resumed(tmp_path, prepared):
    s1 = tiny_settings("simclr", epochs=1)
    _run(s1, tmp_path / "run", prepared)
    s2 = tiny_settings("simclr", epochs=1, temperature=0.5)
    t = _run(s2, tmp_path / "run", prepared)
    assert t.start_epoch == 0


def test_nan_loss_stops_with_clear_error_and_no_outputs(tmp_path, prepared):
    from sempos.errors import NonFiniteLossError

    settings = tiny_settings("simclr", epochs=1)
    settings["pretrain"]["lr"] = 1e30
    with pytest.raises(NonFiniteLossError, match="pretrain.lr"):
        _run(settings, tmp_path / "nan", prepared)
    assert not (tmp_path / "nan" / "backbone.pt").exists()
    assert not (tmp_path / "nan" / "history.csv").exists()


def test_same_settings_with_other_pairs_or_data_are_not_resumed(tmp_path, prepared):
    # A re-mined pair file (same settings, same count) or a rebuilt dataset must retrain: resuming the
    # finished checkpoint would hand back the previous run's weights as the new run's.
    from sempos.positives.pairs import PairSource

    settings = tiny_settings("simclr", epochs=1)
    pool = prepared["splits"]["pretrain"]
    g = torch.Generator().manual_seed(0)
    first, other = (torch.stack([pool, pool[torch.randperm(len(pool), generator=g)]], 1) for _ in range(2))

    def run(pairs, data=prepared):
        job = PretrainJob(settings, seed=3, run_dir=tmp_path / "run", data=data, pairs=PairSource(pool, pairs))
        t = Trainer(job, resolve(RT))
        t.fit()
        return t

    run(first)
    assert run(first).start_epoch == 1  # the same run: nothing left to train
    again = run(other)
    assert again.start_epoch == 0
    assert run(other, {**prepared, "content_sha256": "another dataset"}).start_epoch == 0
    assert PairSource(pool, first).content_digest() != PairSource(pool, other).content_digest()
    assert PairSource(pool, first).content_digest() == PairSource(pool.clone(), first.clone()).content_digest()
