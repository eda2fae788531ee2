"""What the PyTorch reference benchmarks share: the pinned reference release in its own
throwaway venv, and the machine line every benchmark row carries.

The parity fixtures keep their own pins (make_fixtures.py: they were made with those
versions); the speed reference follows the current PyTorch release.

PyPI's Linux torch wheel depends on the CUDA runtime wheels (several GB) even when it
only runs on the CPU; the venv installs them as pip resolves them.
"""

import os
import platform
import subprocess
import sys
from pathlib import Path

VENV = Path(os.environ.get("XP_BENCH_VENV", "/tmp/xp-bench-venv"))
PINS = ["torch==2.15.0", "transformers==5.24.0", "numpy", "psutil"]


def ensure_venv_and_reexec(script: str) -> None:
    """Re-run `script` inside the reference venv, creating it on first use.

    XP_USE_CURRENT_PYTHON=1 skips this and uses the running interpreter's torch and
    transformers (a GPU host without network, or a venv made by hand)."""
    if Path(sys.prefix).resolve() == VENV.resolve() or os.environ.get("XP_USE_CURRENT_PYTHON") == "1":
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", *PINS])
    os.execv(str(python), [str(python), script, *sys.argv[1:]])


def machine(threads: int) -> str:
    """CPU model, the widest vector ISA it reports, thread count and 1-minute load."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:
        pass
    isa = [name for name, flag in [("AVX-512", "avx512f"), ("AVX2+FMA", "avx2"), ("NEON", "asimd")]
           if flag in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {'/'.join(isa) or 'no vector ISA flags'}, {threads} threads, load {load:.2f}"
