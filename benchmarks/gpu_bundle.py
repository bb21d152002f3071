"""Pack what the search imports and the lent GPU machine lacks (Ray, Optuna, MLflow, Hydra, ...) as one tar.xz.

The GPU machine (x86-64, CPython 3.12, no network, no package index) has torch, timm, numpy, pandas, scipy, pyarrow,
aiohttp, grpcio, protobuf, pyyaml, requests and the rest of :data:`MACHINE_HAS`; a search there also needs the
distributions of :data:`DISTRIBUTIONS`. This downloads their cp312 manylinux wheels (``pip download --no-deps``),
unpacks them into one site-packages folder, trims what the search never loads and writes it as one archive:

    python -m benchmarks.gpu_bundle --out .whl/bundle.tar.xz                  # here, with network (minutes)

On the GPU machine (the archive carried there with the repository):

    mkdir -p /tmp/site && tar -xJf .whl/bundle.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site
    python -m benchmarks.gpu_bundle --check /tmp/site        # requirements the machine's own packages do not meet
    python -m search.run space=fashion_attention device=cuda ...

The archive keeps the executable bits of Ray's binaries (``ray/core/src/ray/raylet/raylet``, ``gcs/gcs_server``);
Ray starts its GCS, raylet, dashboard agent and workers with ``sys.executable`` and the driver's environment, so
they find the bundle through the inherited ``PYTHONPATH``. PYTHONPATH precedes site-packages: a bundled
distribution shadows the machine's copy of the same name.

The list is the search's import closure, measured: every module file loaded by every process of a real search with
confirmation (driver, Ray's dashboard, agents and monitors, trial workers), minus what the machine has. Verified
with a CPython 3.12 venv holding only stand-ins for :data:`MACHINE_HAS` and the unpacked archive on PYTHONPATH:
``python -m search.run space=fashion_attention budget.trials=2 budget.epochs=1 budget.train_size=512
budget.val_size=256`` (with and without ``confirm.enabled=false``) ends with exit 0 on CPU.
Measured 2026-12-04: 30.0 MiB, 181 MiB unpacked (the wheels unpack to 334 MiB), about 5 minutes on 2 cores.

``--check`` may list ``mlflow needs pyarrow<26``: MLflow's cap, not a need (the verification ran on pyarrow 26.0.1).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import lzma
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

MiB = 1024 * 1024

# name -> version (the project venv's, so here and there run the same code); why each is here in the comment
DISTRIBUTIONS: dict[str, str] = {
    "ray": "2.60.0",                     # ray[tune]: Tuner, ASHA, the trial workers
    "tensorboardX": "2.6.5",             # ray[tune] extra: Tune's default TBX logger callback imports it
    "optuna": "5.1.0",                   # the study, samplers
    "colorlog": "6.12.0",                # optuna's logging
    "sqlalchemy": "2.1.9",               # optuna's and mlflow's RDB stores (no greenlet: 2.1 made it optional)
    "alembic": "1.20.1",                 # optuna's and mlflow's schema migrations
    "mako": "1.4.3",                     # alembic's migration templates
    "mlflow": "3.17.2",                  # the three wheels share one package folder; their union is mlflow
    "mlflow-skinny": "3.17.2",
    "mlflow-tracing": "3.17.2",
    "cachetools": "7.3.3",               # mlflow.tracing
    "sqlparse": "0.6.1",                 # mlflow.utils.search_utils
    "importlib-metadata": "9.1.0",       # mlflow.utils.requirements_utils imports it by that name
    "cryptography": "50.0.2",            # mlflow's model registry dbmodels import cryptography.fernet
    "cffi": "2.1.1",                     # cryptography's _cffi_backend
    "fastapi": "0.165.0",                # import mlflow -> mlflow.genai -> mlflow.gateway.utils imports fastapi
    "starlette": "1.10.0",               # fastapi
    "databricks-sdk": "0.167.0",         # mlflow.genai asks find_spec("databricks.agents"): needs the parent
    "opentelemetry-api": "1.45.2",       # mlflow tracing; Ray's dashboard agent
    "opentelemetry-sdk": "1.45.2",
    "opentelemetry-semantic-conventions": "0.66b2",
    "opentelemetry-proto": "1.45.2",
    "pydantic": "2.14.4",                # mlflow, Ray's dashboard agent and runtime-env agent
    "pydantic-core": "2.50.5",
    "annotated-types": "0.8.0",          # pydantic
    "typing-inspection": "0.4.5",        # pydantic
    "annotated-doc": "0.0.7",            # fastapi
    "jsonschema": "4.26.0",              # ray (runtime_env validation)
    "jsonschema-specifications": "2025.9.1",
    "referencing": "0.37.0",
    "rpds-py": "2026.9.1",
    "hydra-core": "1.3.8",               # the entry points
    "omegaconf": "2.3.1",
    "antlr4-python3-runtime": "4.9.3",   # omegaconf's grammar (4.9.x exactly; an sdist only: built here)
    "plotly": "7.1.0",                   # the search report
    "narwhals": "2.29.0",                # plotly 7's validators import it
    # the machine has it, maybe older: pydantic 2.14 imports typing_extensions.sentinel (4.16; 4.15 fails), and
    # newer versions keep every old name, so shadowing the machine's copy is safe for torch and the rest
    "typing-extensions": "4.16.0",
}

# bundled although the machine has them (the reason is in DISTRIBUTIONS)
NEWER_THAN_MACHINE = frozenset({"typing-extensions"})

# bundled for their namespace package only (TRIMS removes the rest): --check skips their requirements
HOLLOW = frozenset({"databricks-sdk"})

# what the lent GPU machine has (its brief); nothing else of these is bundled
MACHINE_HAS = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal anyio attrs botorch build certifi charset-normalizer
click cloudpickle colorama contourpy cycler filelock fonttools frozenlist fsspec grpcio h11 h5py httpcore httpx
huggingface-hub idna imageio jinja2 joblib kiwisolver markdown markupsafe matplotlib msgpack multidict networkx numpy
onnx onnx-ir onnxruntime onnxscript opencv-python-headless packaging pandas pillow pip pluggy prometheus-client
propcache protobuf psutil pyarrow pygments pyparsing pytest python-dateutil pyyaml regex requests rich safetensors
scikit-learn scipy setuptools six sortedcontainers sympy tabulate tensorboard threadpoolctl timm torch torchvision
tqdm typer typing-extensions urllib3 werkzeug wheel wrapt xxhash yarl zipp triton jax cupy pytorch-lightning
transformers numba llvmlite seaborn statsmodels
""".split())

# requirements of the list left out on purpose: no process of the traced search loaded them (--check skips them)
LEFT_OUT: dict[str, str] = {
    **dict.fromkeys(("flask", "flask-cors", "gunicorn", "uvicorn", "huey", "graphene"), "the MLflow server and UI"),
    **dict.fromkeys(("docker", "gitpython", "python-dotenv"), "MLflow Projects and model serving"),
    "skops": "mlflow.sklearn's skops format",
    "google-auth": "Databricks' client (databricks/sdk is trimmed)",
    "pycparser": "cffi's C parser: cryptography's bindings come compiled",
}

# published as source only (pure Python): pip builds their wheel here
SOURCE_ONLY = frozenset({"antlr4-python3-runtime"})

# pip matches each manylinux_2_N tag exactly: every glibc level a wheel of the list is built for (the machine's
# glibc is newer than all of them)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64",
             "manylinux_2_34_x86_64", "linux_x86_64", "any")

# (path glob under the site folder, why the search can do without it). Every process of the traced search loaded
# none of these files.
TRIMS: tuple[tuple[str, str], ...] = (
    ("ray/jars", "Java workers and cross-language calls"),
    ("ray/dashboard/client", "the dashboard's web UI: the search starts Ray with include_dashboard=False"),
    ("ray/rllib", "reinforcement learning"),
    ("ray/serve", "model serving"),
    ("ray/llm", "LLM serving and batch inference"),
    ("ray/scripts", "the `ray` CLI: the search starts Ray from Python"),
    ("mlflow/server/js", "the MLflow UI's web build: logging to sqlite:/// needs no server"),
    ("plotly/labextension", "the JupyterLab extension"),
    ("plotly/package_data/datasets", "plotly.data's sample tables (the report embeds plotly.min.js: kept)"),
    ("plotly/package_data/widgetbundle.js", "FigureWidget's Jupyter bundle"),
    ("databricks/sdk", "Databricks' client: mlflow only asks find_spec('databricks.agents'), which needs the "
                       "`databricks` namespace package (kept) and nothing under it"),
    ("**/tests", "test suites"),
    ("**/*.pyi", "type stubs"),
    ("**/*.pxd", "Cython headers"),
    ("**/*.pyx", "Cython sources (their compiled modules stay)"),
    ("*.data", "wheel .data folders: console scripts and headers"),
)


def download(*, dists: dict[str, str], python: str, cache: Path) -> list[Path]:
    """Download each ``name==version`` as a wheel for CPython ``python`` on x86-64 Linux into ``cache`` (pip skips
    what is there already; :data:`SOURCE_ONLY` ones are built from their sdist); returns the wheel paths."""
    cache.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "-qq"]  # -qq: errors only (the extra local indexes warn per name)
    binary = [f"{name}=={version}" for name, version in dists.items() if name not in SOURCE_ONLY]
    source = [f"{name}=={version}" for name, version in dists.items() if name in SOURCE_ONLY]
    cmd = pip + ["download", "--no-deps", "--only-binary=:all:", "--python-version", python,
                 "--implementation", "cp", "-d", str(cache)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + binary, check=True)
    if source:
        subprocess.run(pip + ["wheel", "--no-deps", "-w", str(cache)] + source, check=True)
    wheels = []
    for name, version in dists.items():
        prefix = f"{_wheel_name(name)}-{version}-"
        found = [w for w in cache.glob("*.whl") if w.name.lower().startswith(prefix.lower())]
        if not found:
            raise SystemExit(f"no wheel {prefix}*.whl in {cache} after pip download")
        wheels.append(found[0])
    return wheels


def _wheel_name(name: str) -> str:
    """The distribution name as wheel file names spell it (PEP 427: '-' and '.' become '_')."""
    return name.replace("-", "_").replace(".", "_")


def unpack(*, wheels: Sequence[Path], site: Path) -> None:
    """Extract every wheel into ``site`` (a wheel is already a site-packages layout), keeping the unix modes
    zipfile drops: Ray's raylet and gcs_server must stay executable."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                target = Path(archive.extract(info, site))
                mode = info.external_attr >> 16 & 0o777
                if mode and not info.is_dir():
                    target.chmod(mode | 0o644)


def trim(*, site: Path) -> list[tuple[str, int]]:
    """Delete :data:`TRIMS` from ``site``; returns (glob, bytes freed) for each."""
    freed = []
    for pattern, _why in TRIMS:
        total = 0
        for path in sorted(site.glob(pattern), key=lambda p: len(p.parts)):
            if not path.exists():  # inside a folder this pattern removed already
                continue
            total += _size(path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        freed.append((pattern, total))
    return freed


def strip_binaries(*, site: Path) -> int:
    """``strip --strip-unneeded`` every ELF file (the symbol tables are most of Ray's binaries; what the dynamic
    linker needs stays); returns bytes freed, 0 when ``strip`` is missing."""
    if shutil.which("strip") is None:
        return 0
    freed = 0
    for path in site.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        before = path.stat().st_size
        mode = path.stat().st_mode
        subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
        path.chmod(mode)
        freed += before - path.stat().st_size
    return freed


def write_archive(*, site: Path, out: Path) -> None:
    """Write ``site``'s contents to ``out`` as tar.xz: one xz stream, x86 BCJ filter then LZMA2 preset 9 extreme.
    BCJ makes machine code's call targets relative: -6% on Ray's binaries, nothing on text. Members are grouped by
    suffix so that similar files sit within LZMA2's 64 MiB window; owners are zeroed and times fixed (2020-01-01:
    the same archive from the same wheels, and no pre-1980 time that zip, e.g. Ray's runtime_env, would refuse)."""
    paths = sorted(site.rglob("*"), key=lambda p: (p.is_dir() is False, p.suffix, p.name, str(p)))

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 1577836800
        return info

    out.parent.mkdir(parents=True, exist_ok=True)
    filters = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
    with lzma.open(out, "wb", filters=filters) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for path in paths:
            tar.add(path, arcname=str(path.relative_to(site)), recursive=False, filter=clean)


def check(*, site: Path) -> list[str]:
    """The requirements of the distributions unpacked in ``site`` that this interpreter's packages do not meet
    (one line each; extras and :data:`LEFT_OUT` ignored). Run on the GPU machine with ``site`` on PYTHONPATH."""
    from packaging.requirements import Requirement  # the machine has packaging; the build side needs no import

    unmet = []
    for info in sorted(site.glob("*.dist-info")):
        dist = importlib.metadata.Distribution.at(info)
        if dist.metadata["Name"].lower() in HOLLOW:
            continue
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not req.marker.evaluate({"extra": ""}) or req.name.lower() in LEFT_OUT:
                continue
            try:
                have = importlib.metadata.version(req.name)
            except importlib.metadata.PackageNotFoundError:
                have = None
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.append(f"{dist.metadata['Name']} {dist.version} needs {req.name}{req.specifier}: "
                             f"{have or 'missing'}")
    return unmet


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(".whl/bundle.tar.xz"), help="the archive to write")
    p.add_argument("--python", default="3.12", help="the GPU machine's CPython version (default 3.12)")
    p.add_argument("--cache", type=Path, default=Path(".whl/wheels"), help="downloaded wheels (reused)")
    p.add_argument("--site", type=Path, default=None,
                   help="unpack into this new folder and keep it (default: a temporary folder)")
    p.add_argument("--check", type=Path, default=None, metavar="SITE",
                   help="only list the requirements of the bundle unpacked in SITE that this Python does not meet")
    args = p.parse_args(argv)
    if args.check is not None:
        unmet = check(site=args.check)
        print("\n".join(unmet) if unmet else f"every requirement of {args.check}'s distributions is met")
        return 1 if unmet else 0

    t0 = time.monotonic()
    clash = sorted(set(n.lower() for n in DISTRIBUTIONS) & MACHINE_HAS - NEWER_THAN_MACHINE)
    if clash:
        raise SystemExit(f"bundled although the GPU machine has them: {clash}")
    wheels = download(dists=DISTRIBUTIONS, python=args.python, cache=args.cache)
    with tempfile.TemporaryDirectory(prefix="gpu_bundle_") as tmp:
        site = args.site or Path(tmp) / "site"
        site.mkdir(parents=True)  # a folder that exists already is refused: nothing of it is ours to delete
        unpack(wheels=wheels, site=site)
        unpacked = _size(site)
        freed = trim(site=site)
        stripped = strip_binaries(site=site)
        kept = _size(site)
        write_archive(site=site, out=args.out)

    print(f"{args.out}: {args.out.stat().st_size / MiB:.2f} MiB ({args.out.stat().st_size} bytes); unpacked "
          f"{kept / MiB:.1f} MiB after trimming {unpacked / MiB:.1f} MiB; {time.monotonic() - t0:.0f} s")
    for pattern, size in freed:
        print(f"  trimmed {pattern:32s} {size / MiB:7.1f} MiB")
    print(f"  strip --strip-unneeded (ELF)     {stripped / MiB:7.1f} MiB")
    print(f"{len(wheels)} distributions (cp{args.python.replace('.', '')}, x86-64 Linux):")
    for name, version in DISTRIBUTIONS.items():
        print(f"  {name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
