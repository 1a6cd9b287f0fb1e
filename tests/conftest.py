import http.server
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("CI", "1")  # quiet progress bars
torch.set_num_threads(2)


def fake_prepared(n_train: int = 256, n_test: int = 64, classes: int = 4, size: int = 28, seed: int = 0) -> dict:
    """A prepared-dataset payload (as data/prepare.py writes) of class-dependent blobs."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, classes, (n_train + n_test,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    imgs = []
    for y in ys.tolist():
        cy, cx = 6 + 5 * (y // 2), 6 + 12 * (y % 2)
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
        noise = torch.rand(size, size, generator=g) * 0.3
        imgs.append(((blob + noise).clamp(0, 1) * 255).to(torch.uint8))
    x = torch.stack(imgs)[:, None]
    train = torch.arange(n_train)
    return {
        "name": "fake", "classes": [str(c) for c in range(classes)],
        "train_x": x[:n_train], "train_y": ys[:n_train], "test_x": x[n_train:], "test_y": ys[n_train:],
        "splits": {"train": train[: n_train - 32], "val": train[n_train - 32:], "pretrain": train[: n_train - 32],
                   "semi": {}},
    }


@pytest.fixture
def prepared():
    return fake_prepared()


CUDA_TESTS_ON_CPU = "SEMPOS_CUDA_TESTS_ON_CPU"


@pytest.fixture
def cuda_device() -> torch.device:
    """The device of a test marked `cuda`: the GPU, or a skip without one.

    With SEMPOS_CUDA_TESTS_ON_CPU=1 the same tests run on the CPU (CPU bf16 autocast for the precision
    checks), so they cannot rot between GPU windows (bench/gpu_check.py --cpu --tiny sets it).
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(CUDA_TESTS_ON_CPU) == "1":
        return torch.device("cpu")
    pytest.skip("needs CUDA")


def tiny_settings(algo: str = "simclr", epochs: int = 2, **hp) -> dict:
    return {
        "name": f"tiny_{algo}", "algo": algo, "hp": {"algo": algo, **hp},
        "pretrain": {"epochs": epochs, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                     "weight_decay": 5e-4, "warmup_epochs": 0, "knn_monitor": 0},
        "augment": {"crop_scale": [0.2, 1.0], "flip_p": 0.5, "jitter_p": 0.8, "jitter": [0.4, 0.4, 0.4, 0.1],
                    "grayscale_p": 0.2, "blur_p": 0.0, "solarize_p": 0.0},
        "backbone": {"arch": "resnet18_cifar", "width": 4},
    }


def targz(members: dict) -> bytes:
    """A .tar.gz holding {member name: bytes}, built in memory (fake archives in official layouts)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def place_downloaded(raw_dir: Path, name: str, body: bytes) -> None:
    """Put a file in data/raw/<ds>/ with the MANIFEST the download stage writes after verifying it."""
    import hashlib
    import json

    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / name).write_bytes(body)
    (raw_dir / "MANIFEST.json").write_text(json.dumps({"sha256": {name: hashlib.sha256(body).hexdigest()}}))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op returns while active (memory tests: never N x N)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


class HostSyncs(TorchDispatchMode):
    """Records ops that copy a device value to the host (.item(), int(t), bool(t) all end here)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.seen.append(func)
        return func(*args, **(kwargs or {}))


class FileServer:
    """A local HTTP server on 127.0.0.1 serving `files` ({URL path: body}); 404 for anything else."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = srv.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def file_server():
    srv = FileServer()
    yield srv
    srv.close()


# --- a small fake ILSVRC-2012 in the official layout (encoded-data tests) ------------------------------------

FAKE_WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")


def digit_jpegs(n: int, seed: int = 0, classes: int = 4, quality: int = 90):
    """(JPEG bytes, label) of real images of varied sizes: sklearn's 8x8 digits, tinted and upscaled to 20-60 px."""
    import io

    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        label = k % classes
        pool = np.flatnonzero(digits.target == label % 10)  # more than 10 classes reuse the digits, re-tinted
        img = digits.images[rng.choice(pool)] / 16.0
        tint = np.array([(label + 1) % 2, (label // 2) % 2, (label // 10 % 4) / 3]) * 0.6 + 0.4
        rgb = (np.clip(img[..., None] * tint + rng.random(3) * 0.1, 0, 1) * 255).astype(np.uint8)
        w, h = int(rng.integers(20, 61)), int(rng.integers(20, 61))
        pil = Image.fromarray(rgb).resize((w, h), Image.BILINEAR)
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=quality)
        out.append((buf.getvalue(), label))
    return out


def _tar(members: dict, gz: bool = False) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def fake_devkit(val_wnids: list[str], wnids=FAKE_WNIDS) -> bytes:
    """ILSVRC2012_devkit_t12.tar.gz: meta.mat (leaf synsets + one parent) and the validation ground truth."""
    import io

    import numpy as np
    from scipy.io import savemat

    dt = [(f, "O") for f in ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "wordnet_height",
                             "num_train_images")]
    # The official ids are not the sorted-wnid order; reversed here so a mix-up would show.
    ids = {w: len(wnids) - i for i, w in enumerate(wnids)}
    syn = np.zeros(len(wnids) + 1, dtype=dt)
    for i, w in enumerate(wnids):
        syn[i] = (ids[w], w, f"class {w}", "", 0, 0, 10)
    syn[len(wnids)] = (len(wnids) + 1, "n00001740", "entity", "", len(wnids), 5, 0)
    meta = io.BytesIO()
    savemat(meta, {"synsets": syn})
    gt = "".join(f"{ids[w]}\n" for w in val_wnids).encode()
    return _tar({"ILSVRC2012_devkit_t12/data/meta.mat": meta.getvalue(),
                 "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt": gt}, gz=True)


def fake_ilsvrc(root, per_class: int = 16, val_per_class: int = 4, wnids=FAKE_WNIDS, layout: str = "archives"):
    """A fake ImageNet under root: the three official archives (or an extracted tree); returns its facts.

    Returns {"md5": {archive: md5}, "counts": (train, val), "train_names": [...], "val_wnids": [...]}.
    """
    import hashlib
    from pathlib import Path

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    imgs = digit_jpegs(per_class * len(wnids), seed=1, classes=len(wnids))
    vals = digit_jpegs(val_per_class * len(wnids), seed=2, classes=len(wnids))
    train_names = []
    per_wnid: dict = {w: {} for w in wnids}
    for k, (body, label) in enumerate(imgs):
        w = wnids[label]
        name = f"{w}_{1000 + k}.JPEG"
        per_wnid[w][name] = body
        train_names.append(f"{w}/{name}")
    # Official val order is not grouped by class: shuffle the labels deterministically.
    order = [(k * 7) % len(vals) for k in range(len(vals))]
    val_items = [vals[i] for i in order]
    val_wnids = [wnids[label] for _, label in val_items]
    if layout == "archives":
        (root / "ILSVRC2012_img_train.tar").write_bytes(_tar({f"{w}.tar": _tar(per_wnid[w]) for w in wnids}))
        (root / "ILSVRC2012_img_val.tar").write_bytes(
            _tar({f"ILSVRC2012_val_{k + 1:08d}.JPEG": body for k, (body, _) in enumerate(val_items)}))
    else:
        for w in wnids:
            (root / "train" / w).mkdir(parents=True, exist_ok=True)
            for name, body in per_wnid[w].items():
                (root / "train" / w / name).write_bytes(body)
        (root / "val").mkdir(parents=True, exist_ok=True)
        for k, (body, _) in enumerate(val_items):
            (root / "val" / f"ILSVRC2012_val_{k + 1:08d}.JPEG").write_bytes(body)
    (root / "ILSVRC2012_devkit_t12.tar.gz").write_bytes(fake_devkit(val_wnids, wnids))
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in root.glob("*.tar*")}
    return {"md5": md5, "counts": (len(imgs), len(vals)), "train_names": sorted(train_names), "val_wnids": val_wnids}


@pytest.fixture
def ilsvrc_patch(monkeypatch):
    """Make sempos accept a fake ILSVRC: its md5s and counts instead of the official ones."""
    from sempos.data import ilsvrc

    def apply(facts, name="imagenet", classes=len(FAKE_WNIDS)):
        monkeypatch.setitem(ilsvrc.MD5, ilsvrc.TRAIN_TAR, facts["md5"].get(ilsvrc.TRAIN_TAR, ""))
        monkeypatch.setitem(ilsvrc.MD5, ilsvrc.VAL_TAR, facts["md5"].get(ilsvrc.VAL_TAR, ""))
        monkeypatch.setitem(ilsvrc.MD5, ilsvrc.DEVKIT, facts["md5"][ilsvrc.DEVKIT])
        monkeypatch.setitem(ilsvrc.COUNTS, name, facts["counts"])
        monkeypatch.setitem(ilsvrc.NUM_CLASSES, name, classes)
    return apply


def encoded_prepared(work, per_class: int = 16, val_per_class: int = 4, crop: int = 32, val_size: int = 8,
                     shard_images: int = 24, layout: str = "archives"):
    """Build a fake ILSVRC under work/, pack and prepare it (as the stages do); returns the prepared index path."""
    from pathlib import Path

    from sempos.data import ilsvrc
    from sempos.data.encoded import check_source, pack_dataset, prepare_encoded

    work = Path(work)
    facts = fake_ilsvrc(work / "imagenet", per_class, val_per_class, layout=layout)
    cfg = {"pretrain": "imagenet", "root": str(work / "imagenet"), "val_size": val_size, "semi_fractions": [],
           "image_size": crop, "eval_resize": crop + crop // 8}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in facts["md5"].items():
            mp.setitem(ilsvrc.MD5, k, v)
        mp.setitem(ilsvrc.COUNTS, "imagenet", facts["counts"])
        mp.setitem(ilsvrc.NUM_CLASSES, "imagenet", len(FAKE_WNIDS))
        check_source("imagenet", work / "raw" / "imagenet", cfg)
        pack_dataset("imagenet", work / "raw" / "imagenet", work / "shards" / "imagenet.pt",
                     {"shard_images": shard_images})
    return prepare_encoded("imagenet", work / "raw" / "imagenet", work / "shards" / "imagenet.pt",
                           work / "prepared" / "imagenet.pt", cfg)


# `make mutation` (mutmut): a mutant of module M is judged by M's own tests only. mutmut already runs just the
# tests that called the mutated function; this narrows them to the test files that are about that module
# (a trainer mutant is not re-judged by every test that happens to train a model). Keys are module prefixes.
MUTATION_TESTS = {
    "sempos.losses": ("unit/test_losses.py", "unit/test_neighbour_losses.py", "unit/positives/test_pairsets.py",
                      "unit/positives/test_positive_sources.py", "unit/algos/", "unit/test_ddp_bank.py"),
    "sempos.memory_bank": ("unit/test_memory_bank.py", "unit/test_ddp_bank.py", "unit/algos/test_neighbour_algos.py"),
    "sempos.mining": ("unit/mining/",),
    "sempos.algos": ("unit/algos/", "unit/test_ddp_bank.py", "unit/test_config.py",
                     "unit/positives/test_positive_sources.py"),
    "sempos.train.trainer": ("unit/train/", "unit/algos/test_ema.py", "unit/algos/test_partner_switches.py",
                             "unit/algos/test_neighbour_algos.py", "unit/positives/test_positive_sources.py",
                             "unit/positives/test_matched_steps.py"),
    "sempos.train.optim": ("unit/train/", "unit/algos/test_ema.py"),
    "sempos.eval.knn": ("unit/eval/test_eval.py", "unit/stages/"),
    "sempos.report.tables": ("unit/report/",),
    "sempos.config": ("unit/test_config.py", "unit/test_config_controls.py",
                      "unit/positives/test_positive_sources.py", "unit/algos/test_partner_switches.py",
                      "workflow/test_dvc_sync.py"),
    "sempos.pipeline": ("unit/test_pipeline.py", "unit/test_pipeline_controls.py", "workflow/test_dvc_sync.py",
                        "workflow/test_codedeps.py"),
}


# Test files of MUTATION_TESTS that the campaign does not run (pyproject.toml's test selection), and why.
MUTATION_LEFT_OUT = {
    "tests/unit/train/test_ddp_trainer.py": "two processes per run (10 s a mutant); test_budget.py checks the "
                                            "DDP wrapper in one",
}


def _preload_sempos() -> None:
    """Import every sempos module (no torch op runs: the fork server must stay fork-safe). Stages and the trainer
    import e.g. torchvision inside functions; without this each mutant process paid that import again (7 s).
    Also parse every module's imports once (codedeps caches them): mutmut's sources hold every mutant of a
    function (9 MB in all), and each mutant whose tests build code digests parsed them again (13 s)."""
    import importlib
    import pkgutil

    import sempos
    from sempos import codedeps

    names = [m.name for m in pkgutil.walk_packages(sempos.__path__, "sempos.")]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # optional backends (detectron2, ...) are absent on most machines
            pass
    for name in names:
        codedeps.code_files((name,))
    codedeps.computed_imports()
    sempos._preloaded_for_mutmut = True


# pytest executes this file again in every pytest.main(), so in every mutant: the preload runs once per
# process and its forks inherit it.
if "mutmut" in sys.modules and not getattr(sys.modules.get("sempos"), "_preloaded_for_mutmut", False):
    _preload_sempos()


def pytest_configure(config):
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
        torch.set_num_threads(1)  # mutmut runs one mutant per core: two threads each would only contend


def pytest_collection_modifyitems(config, items):
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if mutant == "stats":
        _shared_fixtures.update({i.nodeid: _shared(i) for i in items})
    if "__mutmut_" not in mutant:
        return
    module = next((m for m in MUTATION_TESTS if mutant.startswith(m + ".")), None)
    if module is None:
        return
    keep = [i for i in items if any(f"tests/{t}" in i.nodeid or i.nodeid.startswith(t)
                                    for t in MUTATION_TESTS[module])]
    dropped = [i for i in items if i not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # mutmut runs with -x: most mutants are killed by their first failing test, so the cheapest go first.
    costs = _test_costs()
    items[:] = sorted(keep, key=lambda i: costs.get(i.nodeid, float("inf")))


# mutmut times only each test's call; a test whose fixture spawns two processes (5 s) would look free and go
# first. Its stats run (MUTANT_UNDER_TEST == "stats", in mutants/) records each test's cost here: its run
# time, its own setup, and the setup of every module- or session-scoped fixture it uses, timed where pytest
# built it (maybe for a test that a given mutant does not run; a mutant's session builds it again).
MUTATION_DURATIONS = "mutation-test-durations.json"
_timed: dict[str, dict[str, float]] = {}
_shared_fixtures: dict[str, list[str]] = {}
_fixture_setup: dict[str, float] = {}  # shared fixture -> its own setup time (the fixtures it requests excluded)
_inner: list[float] = []  # per fixture being set up: time spent setting up the fixtures it requested
_current_test = [""]


def _fixture_key(scope: str, path, name: str) -> str:
    return f"{path if scope == 'module' else ''}::{name}"


def _shared(item) -> list[str]:
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return [_fixture_key(d[-1].scope, item.path, name) for name, d in defs.items()
            if d and d[-1].scope in ("module", "session")]


def pytest_runtest_logstart(nodeid, location):
    _current_test[0] = nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        yield
        return
    _inner.append(0.0)
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    own = took - _inner.pop()
    if _inner:
        _inner[-1] += took
    if fixturedef.scope in ("module", "session"):
        _fixture_setup[_fixture_key(fixturedef.scope, request.node.path, fixturedef.argname)] = own
        t = _timed.setdefault(_current_test[0], {"setup": 0.0, "run": 0.0, "shared": 0.0})
        t["shared"] += own


def pytest_runtest_logreport(report):
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        t = _timed.setdefault(report.nodeid, {"setup": 0.0, "run": 0.0, "shared": 0.0})
        t["setup" if report.when == "setup" else "run"] += report.duration


def _costs() -> dict[str, float]:
    """Each timed test's cost when it runs alone: run + own setup + the shared fixtures it needs."""
    return {nodeid: t["run"] + max(0.0, t["setup"] - t["shared"])
            + sum(_fixture_setup.get(k, 0.0) for k in _shared_fixtures.get(nodeid, []))
            for nodeid, t in _timed.items()}


def pytest_sessionstart(session):
    session.sempos_started = time.monotonic()


def pytest_sessionfinish(session, exitstatus):
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if mutant == "stats" and _timed:
        import json

        with open(MUTATION_DURATIONS, "w") as f:
            json.dump(_costs(), f)
    elif "__mutmut_" in mutant:
        # mutmut keeps no per-mutant times under its fork server: this log is what `make mutation` is tuned by
        with open("mutant-times.tsv", "a") as f:
            f.write(f"{mutant}\t{time.monotonic() - session.sempos_started:.3f}\t{int(exitstatus)}"
                    f"\t{session.testscollected}\n")


def _test_costs() -> dict[str, float]:
    import json

    try:
        with open(MUTATION_DURATIONS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# --- a fake PASCAL VOC devkit (classification lists + XML box annotations), shared by data and detection tests ---

VOC_COLOURS = ((230, 30, 30), (30, 200, 30), (40, 40, 230), (230, 220, 30))  # classes 0..3 (aeroplane .. boat)


def jpeg_bytes(rgb_hwc) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb_hwc).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def voc_scene(rng, width=64, height=48, max_objects=3, difficult_every=5, counter=None):
    """An RGB scene of class-coloured rectangles on grey noise, placed without overlap, and its VOC objects
    (1-based inclusive pixel boxes, so xmax - xmin + 1 is the rectangle's width); every `difficult_every`-th
    object overall is flagged difficult."""
    import numpy as np

    img = rng.integers(90, 140, (height, width, 3)).astype(np.uint8)
    taken = np.zeros((height, width), bool)
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(30):
            w, h = int(rng.integers(10, 26)), int(rng.integers(10, 22))
            x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            if not taken[y0:y0 + h, x0:x0 + w].any():
                break
        else:
            continue
        c = int(rng.integers(0, len(VOC_COLOURS)))
        img[y0:y0 + h, x0:x0 + w] = VOC_COLOURS[c]
        taken[max(0, y0 - 1):y0 + h + 1, max(0, x0 - 1):x0 + w + 1] = True
        n = counter.setdefault("objects", 0) if counter is not None else 0
        if counter is not None:
            counter["objects"] += 1
        objects.append({"cls": c, "box": (x0 + 1, y0 + 1, x0 + w, y0 + h),
                        "difficult": int(difficult_every > 0 and n % difficult_every == difficult_every - 1)})
    return img, objects


def voc_xml(image_id: str, width: int, height: int, objects, classes) -> bytes:
    objs = "".join(
        f"<object><name>{classes[o['cls']]}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{o['difficult']}</difficult><bndbox><xmin>{o['box'][0]}</xmin><ymin>{o['box'][1]}</ymin>"
        f"<xmax>{o['box'][2]}</xmax><ymax>{o['box'][3]}</ymax></bndbox></object>" for o in objects)
    return (f"<annotation><folder>VOC</folder><filename>{image_id}.jpg</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>").encode()


def fake_voc_tar(year: str, splits: dict, seed: int = 0, width: int = 64, height: int = 48):
    """An uncompressed tar in the official layout: VOCdevkit/VOC<year>/{JPEGImages, Annotations, ImageSets/Main}
    with every split list in `splits` ({name: [image ids]}) and the per-class <class>_<split>.txt lists
    (1 present, 0 difficult only, -1 absent). Returns (tar bytes, {image_id: objects})."""
    import numpy as np

    from sempos.data.loaders.voc import CLASSES

    rng = np.random.default_rng(seed)
    root = f"VOCdevkit/VOC{year}/"
    members, truth, counter = {}, {}, {}
    for image_id in sorted({i for ids in splits.values() for i in ids}):
        img, objects = voc_scene(rng, width, height, counter=counter)
        truth[image_id] = objects
        members[root + f"JPEGImages/{image_id}.jpg"] = jpeg_bytes(img)
        members[root + f"Annotations/{image_id}.xml"] = voc_xml(image_id, width, height, objects, CLASSES)
    for split, ids in splits.items():
        members[root + f"ImageSets/Main/{split}.txt"] = ("\n".join(ids) + "\n").encode()
        for c, name in enumerate(CLASSES):
            rows = []
            for i in ids:
                mine = [o for o in truth[i] if o["cls"] == c]
                flag = -1 if not mine else (1 if any(not o["difficult"] for o in mine) else 0)
                rows.append(f"{i} {flag:>2}")
            members[root + f"ImageSets/Main/{name}_{split}.txt"] = ("\n".join(rows) + "\n").encode()
    return _tar(members), truth  # the VOC archives are plain (uncompressed) tars


def place_downloaded_files(raw_dir: Path, files: dict) -> None:
    """Several files in data/raw/<ds>/ with the MANIFEST the download stage writes after verifying them."""
    import hashlib
    import json

    raw_dir.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (raw_dir / name).write_bytes(body)
    (raw_dir / "MANIFEST.json").write_text(json.dumps(
        {"sha256": {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}}))


def fake_voc_archives(n_trainval07: int = 24, n_test07: int = 16, n_trainval12: int = 0, seed: int = 0):
    """The VOC archives sempos reads, in their official layout: {file name: tar bytes} and {image_id: objects}
    (VOC2012 only when n_trainval12 > 0; its ids look like 2008_000001, as in the real archive)."""
    trainval = [f"{i:06d}" for i in range(1, n_trainval07 + 1)]
    test = [f"{i:06d}" for i in range(5001, 5001 + n_test07)]
    files, truth = {}, {}
    tar, t = fake_voc_tar("2007", {"trainval": trainval, "train": trainval[::2], "val": trainval[1::2]}, seed)
    files["VOCtrainval_06-Nov-2007.tar"], truth["2007 trainval"] = tar, t
    tar, t = fake_voc_tar("2007", {"test": test}, seed + 1)
    files["VOCtest_06-Nov-2007.tar"], truth["2007 test"] = tar, t
    if n_trainval12:
        ids12 = [f"2008_{i:06d}" for i in range(1, n_trainval12 + 1)]
        tar, t = fake_voc_tar("2012", {"trainval": ids12, "train": ids12[::2], "val": ids12[1::2]}, seed + 2)
        files["VOCtrainval_11-May-2012.tar"], truth["2012 trainval"] = tar, t
    return files, truth


def fake_pretrained(params: dict, method: str = "random_init", seed: int = 0, width: int = 4) -> Path:
    """A pretrain job's outputs and record without training (cwd = the work dir): a random-init ResNet-18
    backbone, so stages that read it pass the input check a stage run by hand makes."""
    from sempos import provenance
    from sempos.io import save_json, save_torch
    from sempos.models.resnet import build_backbone
    from sempos.pipeline import job

    j = job("pretrain", params, {"ds": params["data"]["pretrain"], "method": method, "seed": seed})
    torch.manual_seed(seed)
    bb = build_backbone("resnet18_cifar", width, 1)
    meta = {"arch": "resnet18_cifar", "width": width, "in_channels": 1, "image_size": 28, "patch_size": None,
            "frozen_patch_embed": False, "feat_dim": bb.feat_dim, "norm_mean": [0.3], "norm_std": [0.3],
            "method": method, "algo": "none", "seed": seed}
    save_torch({"meta": meta, "state_dict": bb.state_dict()}, j.outputs["backbone"])
    Path(j.outputs["history"]).write_text("epoch,steps,loss,knn_top1\n0,0,0.0,0.0\n")
    save_json({"source": "augment", "optimizer_steps": 0}, j.outputs["positives"])
    # The record a real run writes, minus the prepared input these tests do not make (the check skips inputs
    # that are gone, as after a cleanup).
    save_json({"job": j.name, "settings": j.settings(params), "code": "", "inputs": {},
               "outputs": {f: provenance.digest(f) for f in j.output_files()}}, j.record)
    return Path(j.outputs["backbone"])
