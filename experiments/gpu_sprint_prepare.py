"""Prepare the GPU sprint on the CPU machine: the wheels and data that travel with the run.

    python experiments/gpu_sprint_prepare.py          # in the checkout the device tool sends

A GPU machine of this project reaches no package index, runs CPython 3.12 and holds PyTorch
and numpy (and, when last listed, much else: ``IMAGE_HAS`` in gpu_sprint_install.py). This
script writes, into ignored folders of the checkout:

* ``.whl/gpu_sprint/``: a wheel for each of pyproject's dependencies (torch and numpy aside)
  and for each of their requirements that the image does not hold, resolved together by
  ``pip install --dry-run --report`` for CPython 3.12 / manylinux x86-64 and fetched with
  ``pip download --only-binary=:all: --no-deps``. DeepSpeed publishes only a source archive:
  it is built here into a pure-Python wheel (``DS_BUILD_OPS=0``, no compiled ops; ZeRO-2 with
  resm's AdamW needs none, and DeepSpeed picks its CUDA accelerator at run time), so nothing
  is compiled on the GPU machine. Then every wheel's requirements are checked offline
  (``gpu_sprint_install.py --check``).
* ``.sprint/data/``: mapped-Rfam's source (``pretrain/rfam14.2_seed_sequences.fasta.gz``, the
  shared file as it is) and a Swiss-Prot subset for the protein checkpoint
  (``protein/swissprot201401_clu50_reps.sprint_subset.fasta.gz``: the cluster representatives
  whose id hash falls under ``--protein-fraction``).

It checks that the working tree plus the carried folders stay under the device tool's 64 MiB,
and prints the exact ``run`` call to make. Wheels and data are never committed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_sprint_install import IMAGE_HAS, check_closure, marker_env, norm, requirements, wheel_metadata  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".whl" / "gpu_sprint"
DATA = REPO / ".sprint" / "data"
CARRY = [".whl", ".sprint"]
LIMIT = 64 * 2**20
DEEPSPEED = "deepspeed==0.19.8"
PLATFORMS = [
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux1_x86_64",
]
TARGET = [
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    *[x for p in PLATFORMS for x in ("--platform", p)],
]
RUN_COMMAND = "RESM_SPRINT_WORK=/tmp/resm_sprint bash experiments/gpu_sprint.sh $OUT 2>&1 | tee $OUT/sprint.log"


def pip(*args: str, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def deepspeed_wheel(folder: Path) -> Path:
    """DeepSpeed as a py3-none-any wheel built here from its source archive, without ops."""
    found = sorted(folder.glob("deepspeed-*.whl"))
    if found:
        return found[-1]
    with tempfile.TemporaryDirectory() as tmp:
        pip("download", "-q", "--no-deps", "--no-binary", ":all:", DEEPSPEED, "-d", tmp)
        (sdist,) = Path(tmp).glob("deepspeed-*.tar.gz")
        env = {**os.environ, "DS_BUILD_OPS": "0"}
        pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp, str(sdist), env=env)
        (whl,) = Path(tmp).glob("deepspeed-*.whl")
        return Path(shutil.copy2(whl, folder))


def resolve(reqs: list[str]) -> dict[str, dict]:
    """{normalised name: pip's report entry} of the joint resolution of ``reqs`` for 3.12."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        pip(
            "install",
            "-q",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            *TARGET,
            "--target",
            str(Path(tmp) / "t"),
            *reqs,
        )
        entries = json.loads(report.read_text())["install"]
    return {norm(e["metadata"]["name"]): e for e in entries}


def carried(resolved: dict[str, dict], roots: list[str]) -> dict[str, str]:
    """{name: version} to carry: the roots, and, below them, what the image lacks. A package
    the image lacks also brings the image's packages that it needs at a given version (pydantic
    needs a newer typing-extensions than an image may hold): pip upgrades those only if the
    installed version falls short."""
    from packaging.requirements import Requirement

    env = marker_env()
    out: dict[str, str] = {}
    todo = [(norm(Requirement(r).name), True) for r in roots]
    while todo:
        name, wanted = todo.pop()
        if name in out or name in ("torch", "numpy", "triton", "deepspeed") or name.startswith("nvidia-"):
            continue
        if name in IMAGE_HAS and not wanted:
            continue
        entry = resolved[name]
        out[name] = entry["metadata"]["version"]
        lacking = name not in IMAGE_HAS
        for text in entry["metadata"].get("requires_dist", []):
            r = Requirement(text)
            if r.marker is None or r.marker.evaluate(env):
                todo.append((norm(r.name), lacking and bool(r.specifier)))
    return out


def prepare_wheels() -> None:
    WHEELS.mkdir(parents=True, exist_ok=True)
    ds = deepspeed_wheel(WHEELS)
    _, _, ds_reqs = wheel_metadata(ds)
    from packaging.requirements import Requirement

    ds_direct = [r for r in ds_reqs if "extra ==" not in r]
    roots = [r for r in requirements() + ds_direct if norm(Requirement(r).name) not in ("deepspeed", "torch", "numpy")]
    want = carried(resolve(roots), roots)
    have = {}
    for whl in WHEELS.glob("*.whl"):
        name, version, _ = wheel_metadata(whl)
        if norm(name) == "deepspeed":
            continue
        if want.get(norm(name)) == version:
            have[norm(name)] = whl
        else:
            whl.unlink()  # a stale version, or no longer wanted: two versions stop pip
    fetch = [f"{n}=={v}" for n, v in sorted(want.items()) if n not in have]
    if fetch:
        pip("download", "-q", "--no-deps", *TARGET, "-d", str(WHEELS), *fetch)
    problems = check_closure(WHEELS)
    for p in problems:
        print("closure: " + p)
    if problems:
        raise SystemExit(f"{WHEELS}: incomplete ({len(problems)} problem(s) above)")


def prepare_data(source: Path, fraction: float) -> None:
    rfam = source / "pretrain" / "rfam14.2_seed_sequences.fasta.gz"
    prot = source / "protein" / "swissprot201401_clu50_reps.fasta.gz"
    for f in (rfam, prot):
        if not f.is_file():
            raise SystemExit(f"{f}: missing (set RESM_DATA to the shared data folder)")
    (DATA / "pretrain").mkdir(parents=True, exist_ok=True)
    (DATA / "protein").mkdir(parents=True, exist_ok=True)
    shutil.copy2(rfam, DATA / "pretrain" / rfam.name)
    out = DATA / "protein" / "swissprot201401_clu50_reps.sprint_subset.fasta.gz"
    tmp = out.with_suffix(".tmp")
    kept = total = 0
    keep = False
    with gzip.open(prot, "rt") as src, gzip.open(tmp, "wt", compresslevel=9) as dst:
        for line in src:
            if line.startswith(">"):
                total += 1
                rid = line[1:].split()[0]
                h = hashlib.blake2b(rid.encode(), digest_size=8, person=b"resm-sprint").digest()
                keep = int.from_bytes(h, "big") / 2.0**64 < fraction
                kept += keep
            if keep:
                dst.write(line)
    os.replace(tmp, out)
    print(f"{out.relative_to(REPO)}: {kept:,} of {total:,} proteins")


def tree_bytes() -> dict[str, int]:
    """What the device tool sends: tracked and untracked-not-ignored files, and the carry."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    sizes = {"working tree": sum((REPO / f).stat().st_size for f in files if f and (REPO / f).is_file())}
    for c in CARRY:
        sizes[c] = sum(p.stat().st_size for p in (REPO / c).rglob("*") if p.is_file())
    return sizes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("RESM_DATA", REPO.parent / "shared" / "data")),
        help="shared data folder (default: $RESM_DATA, else ../shared/data)",
    )
    ap.add_argument("--protein-fraction", type=float, default=0.3, help="share of Swiss-Prot carried (default 0.3)")
    ap.add_argument("--skip-wheels", action="store_true", help="keep .whl/gpu_sprint as it is")
    a = ap.parse_args()
    if not a.skip_wheels:
        prepare_wheels()
    prepare_data(a.data, a.protein_fraction)
    sizes = tree_bytes()
    for k, v in sizes.items():
        print(f"{k:14s} {v / 2**20:6.1f} MiB")
    total = sum(sizes.values())
    print(f"{'total':14s} {total / 2**20:6.1f} MiB of {LIMIT / 2**20:.0f} MiB")
    if total > LIMIT:
        raise SystemExit("over the device tool's limit: carry less (--protein-fraction)")
    call = {"command": RUN_COMMAND, "carry": CARRY, "timeout_s": 560}
    print("\nThe device call to make (from this checkout):\nrun " + json.dumps(call))
    return 0


if __name__ == "__main__":
    sys.exit(main())
