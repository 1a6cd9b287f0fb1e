"""bf16 autocast against fp32 on the training step of every algorithm: same weights, data and augmentation.

Tolerances, from what bf16 can promise. bf16 keeps 8 significant bits (unit roundoff u = 2^-8 = 0.39 %).
Autocast rounds the inputs of every convolution and matrix product to bf16 and accumulates in fp32; batch
norm, softmax and the losses stay in fp32, so features move by a few u and the loss, a mean over the batch,
by about u: LOSS_RTOL = 2 % (5 u; plus 0.005 absolute for losses near 0, SimSiam/BYOL).
The gradient is worse conditioned: batch norm's backward subtracts nearly equal terms, and for these small
networks rounding only the input images to bf16 (everything else fp32) already moves the fp32 gradient's
norm by up to 5 % and its direction to a cosine of 0.87-0.98 (measured on CPU while choosing these numbers;
worst at a random initialisation, hence the fp32 warm-up steps before the compared step). bf16 cannot do
better than its own input rounding, so GRAD_NORM_RTOL = 10 % and the direction only has to stay clearly
aligned (cosine >= 0.5): a sign error, a dropped branch or a loss computed in bf16 breaks these by far more.
The fp32 reference runs with TF32 off, so it is true fp32. Every figure is recorded in the JUnit report.
"""

import copy
import math

import pytest
import torch

from conftest import fake_prepared, tiny_settings
from sempos.runtime import Runtime
from sempos.train.trainer import PretrainJob, Trainer

pytestmark = pytest.mark.cuda

LOSS_RTOL, LOSS_ATOL = 0.02, 0.005
GRAD_NORM_RTOL = 0.10
GRAD_COS_MIN = 0.5
WARMUP_STEPS = 4
SMALL = {"simclr": {}, "mocov2": {"queue_size": 256}, "byol": {}, "simsiam": {}, "nnclr": {"bank_size": 256},
         "mocov3": {}, "snclr": {"bank_size": 256, "k": 3}}


@pytest.fixture
def true_fp32():
    """TF32 off for the fp32 reference (runtime.resolve turns it on for CUDA)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def rgb_data(n_train: int = 160) -> dict:
    """fake_prepared's blobs as 32 px RGB (the colour augmentations then do real work)."""
    data = fake_prepared(n_train=n_train, size=32)
    tint = torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    for k in ("train_x", "test_x"):
        data[k] = (data[k].expand(-1, 3, -1, -1).float() * tint).to(torch.uint8).contiguous()
    return data


def rt(device: torch.device, amp) -> Runtime:
    return Runtime(device, amp, channels_last=device.type == "cuda", compile=False, progress=False)


def compared_steps(algo: str, device: torch.device, tmp_path) -> dict:
    """(loss, flat gradient) of the same step in fp32 and in bf16, from the same fp32-warmed-up state."""
    settings = tiny_settings(algo, **SMALL[algo])
    settings["pretrain"]["batch_size"] = 64
    settings["backbone"]["width"] = 16
    t = Trainer(PretrainJob(settings, 0, tmp_path, rgb_data()), rt(device, None))
    t.model.train()
    pairs = t.pairs.for_epoch(0, 0)
    for s in range(WARMUP_STEPS):
        t._step(0, s % t.steps_per_epoch, pairs)
    state = copy.deepcopy(t.model.state_dict())  # weights and queues/banks
    out = {}
    for name, amp in (("fp32", None), ("bf16", torch.bfloat16)):
        t.model.load_state_dict(state)
        t.rt = rt(device, amp)
        torch.manual_seed(0)  # NNCLR's pick among K and anything else drawn from the global generator
        logs = t._step(0, WARMUP_STEPS % t.steps_per_epoch, pairs)
        grad = torch.cat([p.grad.float().flatten() for p in t.model.parameters() if p.grad is not None])
        out[name] = (float(logs["loss"]), grad)
    return out


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_bf16_step_matches_fp32(algo, cuda_device, true_fp32, tmp_path, record_property):
    res = compared_steps(algo, cuda_device, tmp_path)
    (loss32, g32), (loss16, g16) = res["fp32"], res["bf16"]
    assert math.isfinite(loss32) and math.isfinite(loss16)
    loss_err = abs(loss16 - loss32)
    norm_rel = abs(g16.norm().item() - g32.norm().item()) / g32.norm().item()
    cos = torch.nn.functional.cosine_similarity(g16, g32, dim=0).item()
    for name, value in (("loss_fp32", loss32), ("loss_bf16", loss16), ("loss_rel_err", loss_err / abs(loss32)),
                        ("grad_norm_rel_err", norm_rel), ("grad_cos", cos)):
        record_property(name, round(value, 6))
    assert loss_err <= LOSS_RTOL * abs(loss32) + LOSS_ATOL, (loss32, loss16)
    assert norm_rel <= GRAD_NORM_RTOL, (g32.norm().item(), g16.norm().item())
    assert cos >= GRAD_COS_MIN
