"""`make gpu-wheels`: stage here, where pip works, what the GPU machine lacks for `make gpu-check` there.

The GPU machine has Python 3.12 with PyTorch, torchvision, pandas, matplotlib, scikit-learn, PyYAML, tabulate,
pytest and more (BOX_HAS), and no internet. This fetches, for CPython 3.12 on manylinux x86_64:

  .gpu-wheels/        wheels of what the check imports that the machine does not hold (jsonschema, pycocotools,
                      lightly) and of their dependencies, resolved here with --no-deps one by one, so that
                      nothing the machine already has (torch above all) is fetched; the versions installed in
                      this venv where they fit, so the machine runs what the tests here ran
  .gpu-wheels/COMMIT  the commit and whether the tree has uncommitted changes (the machine gets no .git)
  .gpu-data/fmnist/   the four Fashion-MNIST .gz files, for the proxy run offline

Both folders are git-ignored; name them in the device call's carry. It prints what travels against the
device tool's 64 MiB limit and fails above it. faiss-gpu is not staged: its wheel is 48 MB and needs the
CUDA 12 cuBLAS wheel (581 MB); the machine has CUDA 13 libraries only (docs/results.md, "GPU check").
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
WHEELS, DATA = ROOT / ".gpu-wheels", ROOT / ".gpu-data"
LIMIT = 64 * 2**20
NEED = ["jsonschema", "pycocotools", "lightly==1.6.0"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
# The Python packages of the GPU machine's image (the device tool's package list, read 2026-11-17).
BOX_HAS = set(map(canonicalize_name, """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax
fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2
joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch
mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver
nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml
regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate
tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split()))
TARGET_ENV = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3",
              "implementation_name": "cpython", "platform_python_implementation": "CPython", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "extra": ""}


def local_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def have_wheel(name: str) -> Path | None:
    for w in WHEELS.glob("*.whl"):
        if canonicalize_name(parse_wheel_filename(w.name)[0]) == name:
            return w
    return None


def download(spec: str) -> Path:
    before = set(WHEELS.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(WHEELS)] + [a for p in PLATFORMS for a in ("--platform", p)] + [spec]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        # Some pure-Python packages publish only an sdist (antlr4-python3-runtime 4.9, which hydra pins):
        # build their wheel here; it must come out py3-none-any, i.e. the same on the machine.
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(WHEELS), spec],
                               capture_output=True, text=True)
        new = set(WHEELS.glob("*.whl")) - before
        pure = [w for w in new if w.name.endswith("-py3-none-any.whl") or w.name.endswith("-py2.py3-none-any.whl")]
        if built.returncode != 0 or not pure:
            for w in new:
                w.unlink()
            raise SystemExit(f"gpu-wheels: no CPython 3.12 manylinux x86_64 wheel of {spec}, nor a pure-Python "
                             "build of it:\n" + "\n".join(ln for ln in (out.stderr + built.stderr).splitlines()
                                                          if "WARNING" not in ln))
    new = set(WHEELS.glob("*.whl")) - before
    name = canonicalize_name(Requirement(spec).name)
    return next(iter(new)) if new else have_wheel(name)


def requires(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(ln.split(":", 1)[1].strip()) for ln in lines if ln.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(TARGET_ENV)]


def resolve_wheels() -> dict[str, Path]:
    """name -> wheel for NEED and their dependencies that the machine lacks; one version each."""
    WHEELS.mkdir(exist_ok=True)
    got: dict[str, Path] = {}
    queue = [Requirement(s) for s in NEED]
    while queue:
        req = queue.pop(0)
        name = canonicalize_name(req.name)
        if name in BOX_HAS:
            continue
        if name in got:
            version = parse_wheel_filename(got[name].name)[1]
            if not req.specifier.contains(version, prereleases=True):
                raise SystemExit(f"gpu-wheels: {name} {version} does not satisfy {req}; pin one version in NEED")
            continue
        wheel = have_wheel(name)
        if wheel is not None and not req.specifier.contains(parse_wheel_filename(wheel.name)[1], prereleases=True):
            wheel.unlink()
            wheel = None
        if wheel is None:
            mine = local_version(req.name)
            pin = f"{req.name}=={mine}" if mine and req.specifier.contains(mine, prereleases=True) else \
                f"{req.name}{req.specifier}"
            wheel = download(pin)
            print(f"  fetched {wheel.name} ({wheel.stat().st_size / 2**20:.2f} MiB)")
        got[name] = wheel
        queue += requires(wheel)
    for w in WHEELS.glob("*.whl"):
        if w not in got.values():
            w.unlink()  # two versions of one package stop the install on the machine
    return got


def stage_fmnist() -> Path:
    sys.path.insert(0, str(ROOT / "src"))
    from sempos.data.catalog import get

    spec = get("fmnist")
    dest = DATA / "fmnist"
    dest.mkdir(parents=True, exist_ok=True)
    for f in spec.files:
        target = dest / f.name
        if f.verify(target):
            continue
        for d in (ROOT / "data" / "raw" / "fmnist", *spec.local_dirs):
            if f.verify(d / f.name):
                shutil.copyfile(d / f.name, target)
                break
        else:
            raise SystemExit(f"gpu-wheels: no verified {f.name}; run `make data-prereqs` (Debian's "
                             f"dataset-fashion-mnist) or the download stage (data/raw/fmnist) first")
    return dest


def tree_bytes() -> int:
    """Bytes of what the device call sends besides the carried folders: tracked + untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return sum((ROOT / p).stat().st_size for p in out.split("\0") if p and (ROOT / p).is_file())


def folder_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args(argv)
    print("gpu-wheels: resolving for CPython 3.12, manylinux x86_64")
    got = resolve_wheels()
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    (WHEELS / "COMMIT").write_text(sha + (" + uncommitted changes" if dirty else "") + "\n")
    data = stage_fmnist()
    sizes = {".gpu-wheels": folder_bytes(WHEELS), ".gpu-data": folder_bytes(DATA), "working tree": tree_bytes()}
    for name, wheel in sorted(got.items()):
        print(f"  {wheel.name:80s} {wheel.stat().st_size / 2**20:6.2f} MiB")
    print(f"  {data.relative_to(ROOT)}/: {', '.join(sorted(p.name for p in data.iterdir()))}")
    total = sum(sizes.values())
    print("travels: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items())
          + f"; total {total / 2**20:.1f} MiB of the 64 MiB limit")
    if total > LIMIT:
        print("gpu-wheels: over the device tool's 64 MiB limit; drop lightly from NEED (its rows then read "
              "'not installed') or carry less", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
