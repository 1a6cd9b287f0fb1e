"""The streaming loader: crop geometry as torchvision defines it, the same views whatever the workers or the
decode path, each (i, i) image decoded once, a bounded number of steps in flight, the eval transform."""

import math

import numpy as np
import pytest
import torch
from conftest import encoded_prepared

from sempos.data import loader
from sempos.data.jpeg import CropSpec, crop_boxes, crop_resize, decode_rgb, resize_center_crop
from sempos.data.prepare import load_prepared


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    data = load_prepared(encoded_prepared(tmp_path_factory.mktemp("enc")))
    return data["train_x"]


@pytest.fixture
def settings():
    saved = (loader.SETTINGS.workers, loader.SETTINGS.decode, loader.SETTINGS.prefetch)
    yield loader.configure
    loader.configure(*saved)


def reference_box(H, W, areas, logrs, ui, uj, scale, ratio):
    """torchvision's RandomResizedCrop.get_params written out for one image, fed the same uniforms."""
    area = H * W
    for a, lr in zip(areas, logrs):
        target = area * (a * (scale[1] - scale[0]) + scale[0])
        aspect = math.exp(lr * (math.log(ratio[1]) - math.log(ratio[0])) + math.log(ratio[0]))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= W and 0 < h <= H:
            return int(ui * (H - h + 1)), int(uj * (W - w + 1)), h, w
    in_ratio = W / H
    if in_ratio < min(ratio):
        w, h = W, int(round(W / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = H, int(round(H * max(ratio)))
    else:
        w, h = W, H
    return (H - h) // 2, (W - w) // 2, h, w


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.2, 1.0), (0.9, 1.0)])
def test_crop_boxes_follow_torchvision_get_params(scale):
    hw = torch.tensor([[375, 500], [60, 20], [20, 60], [224, 224], [33, 1000]])
    spec = CropSpec(scale, (3 / 4, 4 / 3), 0.5)
    boxes, flips = crop_boxes(hw, spec, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same draws, in crop_boxes' documented order
    n = len(hw)
    areas = torch.rand(n, 10, generator=g, dtype=torch.float64)
    logrs = torch.rand(n, 10, generator=g, dtype=torch.float64)
    ui, uj = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)
    want_flip = torch.rand(n, generator=g) < 0.5
    for k, (H, W) in enumerate(hw.tolist()):
        ref = reference_box(H, W, areas[k].tolist(), logrs[k].tolist(), float(ui[k]), float(uj[k]), scale, spec.ratio)
        assert tuple(boxes[k].tolist()) == ref, (H, W)
        top, left, h, w = ref
        assert 0 <= top and top + h <= H and 0 <= left and left + w <= W
    assert torch.equal(flips, want_flip)


def test_crop_boxes_fall_back_to_the_central_crop_with_the_ratio_clamped():
    # scale (1, 1) on a 1:10 image: no candidate fits, so the widest allowed 4:3 crop at the centre.
    boxes, _ = crop_boxes(torch.tensor([[30, 300]]), CropSpec((1.0, 1.0)), torch.Generator().manual_seed(0))
    assert boxes[0].tolist() == [0, (300 - 40) // 2, 30, 40]


def test_views_are_identical_for_any_number_of_workers_and_the_device_path(images, settings):
    pairs = torch.tensor([[0, 0], [3, 9], [5, 5], [12, 40], [7, 7], [2, 2]])
    plan = [(11, pairs), (12, pairs.flip(0)), (13, torch.arange(6))]
    runs = {}
    for name, kw in {"in-process": dict(workers=0, decode="cpu"), "1 worker": dict(workers=1, decode="cpu"),
                     "2 workers": dict(workers=2, decode="cpu"), "device path": dict(workers=0, decode="device")}.items():
        settings(**kw)
        runs[name] = list(loader.crop_stream(images, iter(plan), CropSpec((0.2, 1.0)), 32, "cpu"))
    base = runs.pop("in-process")
    assert base[0].shape == (6, 2, 3, 32, 32) and base[2].shape == (6, 3, 32, 32)
    assert base[0].dtype == torch.uint8
    for name, got in runs.items():
        assert all(torch.equal(a, b) for a, b in zip(base, got)), name


def test_views_are_the_drawn_crops_of_the_decoded_images(images, settings):
    settings(workers=0, decode="cpu")
    pairs = torch.tensor([[4, 4], [1, 30]])
    (views,) = loader.crop_stream(images, [(5, pairs)], CropSpec((0.2, 1.0)), 32, "cpu")
    g = torch.Generator().manual_seed(5)
    hw = images.sizes()
    b1, f1 = crop_boxes(hw[pairs[:, 0]], CropSpec((0.2, 1.0)), g)
    b2, f2 = crop_boxes(hw[pairs[:, 1]], CropSpec((0.2, 1.0)), g)
    for k, (a, b) in enumerate(pairs.tolist()):
        ia, ib = decode_rgb(images.table.read(a)), decode_rgb(images.table.read(b))
        assert tuple(ia.shape[1:]) == tuple(hw[a].tolist())
        assert torch.equal(views[k, 0], crop_resize(ia, b1[k], 32, bool(f1[k])))
        assert torch.equal(views[k, 1], crop_resize(ib, b2[k], 32, bool(f2[k])))
    assert not torch.equal(views[0, 0], views[0, 1])  # two different views of image 4


def test_an_augmented_pair_decodes_its_image_once(images, settings, monkeypatch):
    settings(workers=0, decode="cpu")
    calls = []
    real = loader.decode_rgb
    monkeypatch.setattr(loader, "decode_rgb", lambda data: calls.append(1) or real(data))
    list(loader.crop_stream(images, [(0, torch.tensor([[0, 0], [1, 1], [2, 3]]))], CropSpec(), 32, "cpu"))
    assert len(calls) == 4  # images 0 and 1 once each for both views; 2 and 3 once each


def test_device_path_decodes_each_step_in_one_batched_call(images, settings, monkeypatch):
    import torchvision.io

    settings(workers=0, decode="device")
    calls = []
    real = torchvision.io.decode_jpeg

    def spy(data, mode=None, device="cpu"):
        calls.append((len(data), str(device)))
        return real(data, mode=mode, device=device)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", spy)  # torchcodec is not installed in the test venv
    plan = [(s, torch.tensor([[s, s], [s + 1, s + 20]])) for s in range(3)]
    list(loader.crop_stream(images, plan, CropSpec(), 32, "cpu"))
    assert calls == [(3, "cpu")] * 3  # a list of the step's distinct images, on the target device


@pytest.mark.parametrize("workers,decode", [(0, "cpu"), (2, "cpu"), (0, "device")])
def test_only_a_few_steps_are_in_flight(images, settings, workers, decode):
    settings(workers=workers, decode=decode, prefetch=2)
    drawn = []

    def plan():
        for s in range(12):
            drawn.append(s)
            yield s, torch.tensor([[s, s], [s + 1, s + 2], [s + 3, s + 3], [s + 4, s + 5]])

    for step, _ in enumerate(loader.crop_stream(images, plan(), CropSpec(), 32, "cpu")):
        # Steps whose boxes were drawn (their decoding may be under way) beyond the one just delivered.
        assert len(drawn) - 1 - step <= 3, (step, len(drawn))


def test_eval_batches_are_resize_then_central_crop_in_order(images, settings):
    settings(workers=0, decode="cpu")
    subset = images[torch.tensor([5, 1, 9, 2, 30])]
    got = torch.cat(list(loader.eval_batches(subset, 2, "cpu")))
    assert got.shape == (5, 3, 32, 32)
    for k, row in enumerate(subset.rows.tolist()):
        want = resize_center_crop(decode_rgb(images.table.read(row)), images.eval_resize, images.crop_size)
        assert torch.equal(got[k], want)
    settings(workers=2, decode="cpu")
    assert torch.equal(torch.cat(list(loader.eval_batches(subset, 2, "cpu"))), got)


def test_shard_images_index_like_a_tensor(images):
    sub = images[torch.tensor([3, 1])]
    assert len(sub) == 2 and sub.shape == (2, 3, 32, 32)
    assert sub[1:].rows.tolist() == [1] and images[np.array([0])].rows.tolist() == [0]
    assert sub.names() == [images.names()[3], images.names()[1]]
    assert torch.equal(sub.sizes(), images.sizes()[torch.tensor([3, 1])])
