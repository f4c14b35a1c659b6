"""Offline installation of resm's dependencies for the GPU sprint (experiments/gpu_sprint.sh).

    python experiments/gpu_sprint_install.py --wheels .whl/gpu_sprint            # install what is missing
    python experiments/gpu_sprint_install.py --wheels .whl/gpu_sprint --check    # closure check only

Install: every requirement of pyproject.toml's ``dependencies`` (and pytest, for the gpu
checks) that the running Python does not already satisfy is installed with
``pip install --no-index --find-links WHEELS``, all together, then one by one if that fails
(so one missing wheel costs only its own package); what is already there is left alone. Then
each package is imported, and the exit status is non-zero if any still is missing.

``--check`` (the CPU side, before a GPU run): reads each carried wheel's metadata and reports
every requirement (for CPython 3.12 on Linux x86-64) that neither another carried wheel nor a
package of a bare PyTorch GPU image (:data:`IMAGE_HAS`) satisfies. Exit 1 if any.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]

# the import name of each distribution whose module is named otherwise
IMPORT_NAMES = {
    "fair-esm": "esm",
    "viennarna": "RNA",
    "linearpartition-unofficial": "linearpartition",
    "scikit-learn": "sklearn",
    "pyyaml": "yaml",
    "pytest": "pytest",
}
# provided by any PyTorch GPU image (never carried)
TORCH_FAMILY = (
    "torch",
    "numpy",
    "triton",
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "markupsafe",
    "filelock",
    "fsspec",
    "setuptools",
    "typing-extensions",
)
# What the project's GPU image held when last listed (2026-11): used only by --check, to tell
# which requirements of the carried wheels the image will satisfy. On the GPU the installed
# packages themselves decide.
IMAGE_HAS = frozenset(TORCH_FAMILY) | frozenset(
    [
        "accelerate",
        "annotated-doc",
        "anyio",
        "certifi",
        "charset-normalizer",
        "click",
        "cloudpickle",
        "einops",
        "h11",
        "hf-xet",
        "httpcore",
        "httpx",
        "huggingface-hub",
        "hypothesis",
        "idna",
        "joblib",
        "msgpack",
        "ninja",
        "nvidia-ml-py",
        "packaging",
        "peft",
        "pluggy",
        "psutil",
        "py-cpuinfo",
        "pytest",
        "pyyaml",
        "regex",
        "requests",
        "rich",
        "safetensors",
        "scikit-learn",
        "scipy",
        "shellingham",
        "threadpoolctl",
        "tokenizers",
        "tqdm",
        "transformers",
        "typer",
        "typing-inspect",
        "urllib3",
        "iniconfig",
        "pygments",
        "markdown-it-py",
        "mdurl",
    ]
)


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[str]:
    """pyproject's dependencies, less torch and numpy (the image's own), plus pytest."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if req_name(d) not in ("torch", "numpy")] + ["pytest>=7"]


def req_name(req: str) -> str:
    """The normalised distribution name of a requirement string."""
    return norm(re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0])


def satisfied(req: str) -> str | None:
    """The installed version if ``req`` is met here, else None."""
    from packaging.requirements import Requirement

    r = Requirement(req)
    try:
        version = metadata.version(r.name)
    except metadata.PackageNotFoundError:
        return None
    return version if r.specifier.contains(version, prereleases=True) else None


def install(wheels: Path, probe_imports: bool = True) -> int:
    reqs = requirements()
    missing = []
    for req in reqs:
        have = satisfied(req)
        print(f"{req:40s} {'present ' + have if have else 'MISSING'}")
        if not have:
            missing.append(req)
    if missing and not wheels.is_dir():
        print(f"no wheel folder {wheels}: cannot install {', '.join(missing)}")
    elif missing:
        pip = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            str(wheels),
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
        ]
        t0 = time.time()
        if subprocess.run(pip + missing).returncode != 0:
            print("installing all together failed; one at a time:")
            for req in missing:
                rc = subprocess.run(pip + [req]).returncode
                print(f"{req}: {'installed' if rc == 0 else f'FAILED (pip exit {rc})'}")
        print(f"pip: {time.time() - t0:.1f} s")
    else:
        print("nothing to install")
    if not probe_imports:
        return 1 if any(satisfied(r) is None for r in reqs) else 0
    modules = {req_name(r): IMPORT_NAMES.get(req_name(r), req_name(r).replace("-", "_")) for r in reqs}
    probe = (
        "import importlib, sys\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n"
        "    except Exception as e:\n"
        "        print('IMPORT-FAILED', m, type(e).__name__, (str(e).splitlines() or [''])[0][:120])"
    )
    p = subprocess.run([sys.executable, "-c", probe, *modules.values()], capture_output=True, text=True)
    bad = [ln.split(" ", 1)[1] for ln in p.stdout.splitlines() if ln.startswith("IMPORT-FAILED ")]
    if p.returncode != 0:
        bad.append(f"the import probe itself failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    print("imports: " + ("all ok (" + ", ".join(modules.values()) + ")" if not bad else "FAILED: " + "; ".join(bad)))
    return 1 if bad else 0


# ----------------------------------------------------------------------------- closure check
def wheel_metadata(path: Path) -> tuple[str, str, list[str]]:
    """(name, version, Requires-Dist lines) of a wheel file."""
    with zipfile.ZipFile(path) as z:
        (meta,) = [n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        text = z.read(meta).decode("utf-8", "replace")
    head = text.split("\n\n", 1)[0]
    field = lambda k: [ln.split(":", 1)[1].strip() for ln in head.splitlines() if ln.startswith(k + ":")]  # noqa: E731
    return field("Name")[0], field("Version")[0], field("Requires-Dist")


def marker_env(python: str = "3.12") -> dict[str, str]:
    """The GPU machine (Linux x86_64, CPython ``python``) as the environment that requirement
    markers are evaluated in (``packaging.markers.Marker.evaluate``)."""
    return {
        "python_version": python,
        "python_full_version": python + ".0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def check_closure(wheels: Path, python: str = "3.12") -> list[str]:
    """Requirements of the carried wheels (and of pyproject) that nothing satisfies on the GPU
    machine: neither a carried wheel nor :data:`IMAGE_HAS`. Also two versions of one package."""
    from packaging.requirements import Requirement

    env = marker_env(python)
    have: dict[str, str] = {}
    needs: list[tuple[str, str]] = [("pyproject.toml", r) for r in requirements()]
    problems = []
    for whl in sorted(wheels.glob("*.whl")):
        name, version, reqs = wheel_metadata(whl)
        if norm(name) in have:
            problems.append(f"{whl.name}: a second version of {name} ({have[norm(name)]} already carried)")
        have[norm(name)] = version
        needs += [(whl.name, r) for r in reqs]
    for where, text in needs:
        r = Requirement(text)
        if r.marker is not None and not r.marker.evaluate(env):
            continue
        n = norm(r.name)
        if n in have:
            if not r.specifier.contains(have[n], prereleases=True):
                problems.append(f"{where}: needs {text}, carried {n} {have[n]}")
        elif n not in IMAGE_HAS:
            problems.append(f"{where}: needs {text}, neither carried nor on the image")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", type=Path, required=True, help="folder of carried wheels")
    ap.add_argument("--check", action="store_true", help="only check that the carried wheels are complete")
    ap.add_argument("--no-import-probe", action="store_true", help="skip importing each package after installing")
    a = ap.parse_args()
    if a.check:
        if not a.wheels.is_dir():
            print(f"{a.wheels}: no such wheel folder")
            return 1
        problems = check_closure(a.wheels)
        n = len(list(a.wheels.glob("*.whl")))
        print(f"{n} wheels in {a.wheels}: " + ("complete" if not problems else f"{len(problems)} problem(s)"))
        for p in problems:
            print("  " + p)
        return 1 if problems else 0
    return install(a.wheels, probe_imports=not a.no_import_probe)


if __name__ == "__main__":
    sys.exit(main())
