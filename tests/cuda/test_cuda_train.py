"""Single-process (DDP-free) training on the GPU with the settings the GPU configs use (bf16 autocast,
channels_last): every algorithm trains and writes a loadable backbone, a step waits on the device at
most once (the NaN guard), and a killed run resumes to the weights of an uninterrupted one."""

import math

import pytest
import torch

from conftest import HostSyncs, fake_prepared, tiny_settings
from sempos.eval.features import extract
from sempos.models.checkpoint import load_backbone
from sempos.runtime import Runtime
from sempos.train.trainer import CHECKPOINT, PretrainJob, Trainer

pytestmark = pytest.mark.cuda

SMALL = {"simclr": {}, "mocov2": {"queue_size": 64}, "byol": {}, "simsiam": {}, "nnclr": {"bank_size": 64},
         "mocov3": {}, "snclr": {"bank_size": 64, "k": 3}}


def gpu_runtime(device: torch.device) -> Runtime:
    """What runtime.resolve gives for `device: cuda` (bf16 autocast, channels_last), on `device`."""
    return Runtime(device, torch.bfloat16, channels_last=device.type == "cuda", compile=False, progress=False)


def _trainer(algo, device, run_dir, epochs=2, data=None, on_step=None, seed=0):
    job = PretrainJob(tiny_settings(algo, epochs=epochs, **SMALL[algo]), seed, run_dir, data or fake_prepared(),
                      on_step=on_step)
    return Trainer(job, gpu_runtime(device))


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_every_algorithm_trains_on_one_device_and_writes_a_loadable_backbone(algo, cuda_device, tmp_path,
                                                                              record_property):
    t = _trainer(algo, cuda_device, tmp_path)
    init = {k: v.clone() for k, v in t.model.backbone.state_dict().items()}
    t.fit()
    losses = [h["loss"] for h in t.history[1:]]
    record_property("losses", ";".join(f"{v:.4f}" for v in losses))
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(init[k], v) for k, v in t.model.backbone.state_dict().items())
    assert all(p.device.type == cuda_device.type for p in t.model.parameters())
    bb, norm, meta = load_backbone(tmp_path / "backbone.pt", cuda_device)
    feats = extract(bb, fake_prepared()["test_x"], norm, cuda_device)
    assert feats.shape == (64, meta["feat_dim"]) and torch.isfinite(feats).all()


class SyncCounter:
    """Counts host waits on the device between start() and stop(): CUDA's sync debug mode on a GPU (every
    synchronising call, a pageable host-to-device copy included), the dispatcher's scalar reads on a CPU."""

    def __init__(self, device: torch.device):
        self.device, self.count = device, 0

    def start(self):
        if self.device.type != "cuda":
            self._mode = HostSyncs().__enter__()
            return
        import warnings

        torch.cuda.synchronize()
        self._warn = warnings.catch_warnings(record=True)
        self._seen = self._warn.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def stop(self):
        if self.device.type != "cuda":
            self._mode.__exit__(None, None, None)
            self.count = len(self._mode.seen)
            return
        torch.cuda.set_sync_debug_mode("default")
        self._warn.__exit__(None, None, None)
        self.count = sum("synchroniz" in str(w.message) for w in self._seen)


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_a_training_step_waits_on_the_device_at_most_once(algo, cuda_device, tmp_path, record_property):
    """Step 1 of a real fit(), from its on_step hook to the next: the one allowed wait is the NaN guard's
    look at the loss; pairs, losses and diagnostics stay on the device."""
    counter = SyncCounter(cuda_device)

    def hook(epoch, step):
        if step == 1:
            counter.start()
        elif step == 2:
            counter.stop()

    t = _trainer(algo, cuda_device, tmp_path, epochs=1, on_step=hook)
    assert t.steps_per_epoch >= 3
    t.fit()
    record_property("host_syncs_per_step", counter.count)
    assert counter.count <= 1


@pytest.fixture
def deterministic_cudnn():
    """Deterministic convolution algorithms, so two uninterrupted runs can be compared at all."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


class Killed(Exception):
    pass


def _flat_state(t: Trainer) -> torch.Tensor:
    return torch.cat([v.detach().float().flatten().cpu() for v in t.model.state_dict().values()
                      if v.is_floating_point()])


@pytest.mark.parametrize("algo", ["simclr", "mocov2", "snclr"])
def test_resume_on_the_device_ends_at_the_uninterrupted_weights(algo, cuda_device, deterministic_cudnn, tmp_path,
                                                                record_property):
    """Two uninterrupted runs give the run-to-run spread; a killed-and-resumed run must stay within it.

    Training amplifies any difference about a hundredfold within an epoch (measured on CPU: a 1e-4 nudge
    to the checkpoint, or an optimiser that lost its momentum, ends 1-3 % away in relative L2), so a broken
    resume cannot hide under a spread of at most 1e-4."""
    data = fake_prepared()
    straight = _trainer(algo, cuda_device, tmp_path / "a", epochs=3, data=data)
    straight.fit()
    again = _trainer(algo, cuda_device, tmp_path / "b", epochs=3, data=data)
    again.fit()

    def kill(epoch, step):
        if epoch == 1 and step == 2:
            raise Killed

    with pytest.raises(Killed):
        _trainer(algo, cuda_device, tmp_path / "r", epochs=3, data=data, on_step=kill).fit()
    assert (tmp_path / "r" / CHECKPOINT).exists() and not (tmp_path / "r" / "backbone.pt").exists()
    resumed = _trainer(algo, cuda_device, tmp_path / "r", epochs=3, data=data)
    resumed.fit()
    assert resumed.start_epoch == 1
    a = _flat_state(straight)
    spread = ((a - _flat_state(again)).norm() / a.norm()).item()
    gap = ((a - _flat_state(resumed)).norm() / a.norm()).item()
    record_property("rerun_rel_l2", spread)
    record_property("resume_rel_l2", gap)
    assert spread <= 1e-4, "two uninterrupted runs differ: something in the step is nondeterministic on this device"
    assert gap <= max(2 * spread, 1e-6), f"resumed run is {gap:.2e} away (reruns: {spread:.2e})"
    loss_gap = max(abs(x["loss"] - y["loss"]) for x, y in zip(straight.history[1:], resumed.history[1:]))
    assert loss_gap <= 1e-4 + 2 * max(abs(x["loss"] - y["loss"]) for x, y in zip(straight.history[1:], again.history[1:]))
