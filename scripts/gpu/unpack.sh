# Sourced by checks.sh and bench.sh on the GPU host: unpacks the xz-compressed
# binaries of pack.sh in .gpu/ (with Python's lzma, in case the host has no xz) and
# sets up the environment both need.
python3 - <<'PY'
import glob, lzma, os, shutil
for packed in glob.glob(".gpu/*.xz"):
    with lzma.open(packed) as src, open(packed[:-3], "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(packed[:-3], 0o755)
    os.remove(packed)
PY
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64
export XP_USE_CURRENT_PYTHON=1 PYTHONUNBUFFERED=1
