"""The peers' virtual environments, built on demand by ``suite.py``.

``benchmarks/.venvs/<name>`` is made from ``peers/requirements-<name>.txt`` with the
runner's Python and reused while its stamp (the hash of that file and of the Python
version) still matches.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent / ".venvs"
STAMP = ".bench-requirements"


class VenvError(RuntimeError):
    pass


def fingerprint(requirements: Path) -> str:
    data = requirements.read_bytes() + sys.version.encode()
    return hashlib.sha256(data).hexdigest()


def python(name: str) -> Path:
    return ROOT / name / "bin" / "python"


def ensure(name: str) -> Path:
    """Return the venv's interpreter, (re)building the venv when its stamp is stale."""
    requirements = HERE / f"requirements-{name}.txt"
    venv, wanted = ROOT / name, fingerprint(requirements)
    stamp = venv / STAMP
    if stamp.exists() and stamp.read_text() == wanted and python(name).exists():
        return python(name)
    shutil.rmtree(venv, ignore_errors=True)
    print(f"suite: building {venv} from {requirements.name} (pip) ...", file=sys.stderr,
          flush=True)
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(python(name)), "-m", "pip", "install", "-q", "-r", str(requirements)])
    stamp.write_text(wanted)
    return python(name)


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise VenvError(f"{' '.join(argv[:4])} ... failed: {' | '.join(tail)}")
