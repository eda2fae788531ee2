#!/usr/bin/env python3
"""Runner overhead: xp vs DVC vs Snakemake on the same chain of trivial steps.

The chain: step i (0-based) reads step i-1's output, copies it and appends a line
with its own parameter `p` (step 0 starts from nothing). Built at 13 and 103 steps
for each tool, then timed (wall clock, median of --reps repetitions):

  no-op   everything built, run again: nothing to do.
  rerun   the parameter of the middle step (index N//2: step 51 of 103, so steps
          51..102 = 52 steps rerun; step 6 of 13, so 7 rerun) set to a value not
          used before, then run. Each repetition uses a fresh value, so every
          repetition starts from a fully built chain and reruns exactly those steps
          (and no run cache - DVC's or xp's store - can answer it).

Baseline: the trivial program alone, i.e. the same `sh -c` command run directly
from this script once per rerun step, sequentially. Overhead per executed step =
(rerun wall time - baseline) / steps rerun; it includes the tool's fixed start-up
cost (so it is an upper bound of the marginal per-step cost). Every time is given twice:
wall clock, and CPU time (user + system of the tool and all its children, from
getrusage(RUSAGE_CHILDREN)), which a loaded machine disturbs much less.

DVC and Snakemake are installed into a throwaway venv (default under
$XDG_CACHE_HOME/xp-bench-runners, override with RUNNERS_VENV). The xp binary is
$XP_BIN (default: the checkout's target/release/xp, or $CARGO_TARGET_DIR's;
build it with `cargo build --release`).

Usage: python3 scripts/bench/runners.py [--reps 5] [--sizes 13,103] [--tools xp,dvc,snakemake]
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
XP_BIN = os.path.abspath(
    os.environ.get(
        "XP_BIN",
        os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "xp"),
    )
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
VENV = Path(os.environ.get("RUNNERS_VENV", CACHE / "xp-bench-runners" / "venv"))

# The step's program: copy the previous output (if any), append the parameter.
# $1 = previous file ("" for step 0), $2 = output, $3 = parameter.
SCRIPT = 'if [ -n "$1" ]; then cat "$1" > "$2"; else : > "$2"; fi; echo "p=$3" >> "$2"'


def sh(cmd, cwd=None, env=None, check=True):
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stdout[-3000:]}")
    return r


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd, cwd=None, env=None):
    """(wall seconds, CPU seconds: user + system of the tool and everything it ran)."""
    c, t = cpu_children(), time.perf_counter()
    sh(cmd, cwd=cwd, env=env)
    return time.perf_counter() - t, cpu_children() - c


def venv_env():
    env = dict(os.environ)
    env["PATH"] = f"{VENV / 'bin'}:{env['PATH']}"
    env["VIRTUAL_ENV"] = str(VENV)
    # no telemetry, no update checks: they would add network time to the runs
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_NO_UPDATE_CHECK"] = "1"
    return env


def ensure_venv(tools):
    need = [t for t in ("dvc", "snakemake") if t in tools]
    if not need:
        return
    if not all((VENV / "bin" / t).exists() for t in need):
        print(f"installing {' '.join(need)} into {VENV} ...", file=sys.stderr)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        sh([sys.executable, "-m", "venv", str(VENV)])
        sh([str(VENV / "bin" / "pip"), "install", "-q", "dvc", "snakemake"])


# ---------------------------------------------------------------- chain writers

class Xp:
    name = "xp"

    def __init__(self, root, n):
        self.root, self.n = root, n
        self.toml = root / "chain.toml"
        self.store = root / "store"

    def write(self, params):
        lines = ['[experiment]\nname = "chain"\n']
        for i, p in enumerate(params):
            prev = f'"{{inputs.prev}}"' if i else '""'
            lines.append(f"[steps.s{i}]")
            lines.append('kind = "command"')
            script = SCRIPT.replace("$3", "$XP_PARAM_P")  # xp passes params as XP_PARAM_*
            lines.append(f"argv = [\"sh\", \"-c\", '{script}', \"sh\", {prev}, \"{{outputs.out}}\"]")
            if i:
                lines.append(f'inputs = {{ prev = "s{i - 1}.out" }}')
            lines.append(f"params = {{ p = {p} }}")
            lines.append('outputs = { out = "out.txt" }\n')
        self.toml.write_text("\n".join(lines))

    def setup(self):
        pass

    def cmd(self):
        return [XP_BIN, "run", str(self.toml), "--cache-dir", str(self.store)]

    def env(self):
        return None

    def version(self):
        return sh([XP_BIN, "--version"]).stdout.strip()


class Dvc:
    name = "DVC"

    def __init__(self, root, n):
        self.root, self.n = root, n

    def setup(self):
        sh(["git", "init", "-q"], cwd=self.root)
        sh(["dvc", "init", "-q"], cwd=self.root, env=venv_env())
        sh(["dvc", "config", "core.autostage", "false"], cwd=self.root, env=venv_env())

    def write(self, params):
        y = ["stages:"]
        for i in range(self.n):
            prev = f"s{i - 1}.txt" if i else '""'
            y.append(f"  s{i}:")
            cmd = f"sh -c '{SCRIPT}' sh {prev} s{i}.txt ${{s{i}.p}}"
            y.append(f"    cmd: {json.dumps(cmd)}")  # JSON strings are YAML strings
            if i:
                y.append(f"    deps:\n    - s{i - 1}.txt")
            y.append(f"    params:\n    - s{i}.p")
            y.append(f"    outs:\n    - s{i}.txt:\n        cache: false")
        (self.root / "dvc.yaml").write_text("\n".join(y) + "\n")
        (self.root / "params.yaml").write_text(
            "".join(f"s{i}:\n  p: {p}\n" for i, p in enumerate(params)))

    def cmd(self):
        return ["dvc", "repro", "-q"]

    def env(self):
        return venv_env()

    def version(self):
        return "DVC " + sh(["dvc", "--version"], env=venv_env()).stdout.strip().splitlines()[-1]


class Snakemake:
    name = "Snakemake"

    def __init__(self, root, n):
        self.root, self.n = root, n

    def setup(self):
        pass

    def write(self, params):
        s = ['configfile: "config.yaml"\n',
             f'rule all:\n    input: "s{self.n - 1}.txt"\n']
        for i in range(self.n):
            prev = f's{i - 1}.txt' if i else None
            s.append(f"rule s{i}:")
            if prev:
                s.append(f'    input: "{prev}"')
            s.append(f'    output: "s{i}.txt"')
            s.append(f'    params: p=config["s{i}"]')
            inp = "{input}" if prev else '""'
            cmd = f"sh -c '{SCRIPT}' sh {inp} {{output}} {{params.p}}"
            s.append(f"    shell: {json.dumps(cmd)}\n")  # a JSON string is a Python string
        (self.root / "Snakefile").write_text("\n".join(s))
        (self.root / "config.yaml").write_text("".join(f"s{i}: {p}\n" for i, p in enumerate(params)))

    def cmd(self):
        return ["snakemake", "--cores", "1", "--quiet", "all"]

    def env(self):
        return venv_env()

    def version(self):
        return "Snakemake " + sh(["snakemake", "--version"], env=venv_env()).stdout.strip()


TOOLS = {"xp": Xp, "dvc": Dvc, "snakemake": Snakemake}


def baseline(root, steps):
    """The trivial program alone: the step's `sh -c` run `steps` times in a row."""
    d = root / "baseline"
    d.mkdir()
    c, t = cpu_children(), time.perf_counter()
    prev = ""
    for i in range(steps):
        out = str(d / f"s{i}.txt")
        sh(["sh", "-c", SCRIPT, "sh", prev, out, "1"])
        prev = out
    return time.perf_counter() - t, cpu_children() - c


def bench(tool_cls, n, reps, work):
    root = Path(tempfile.mkdtemp(prefix=f"{tool_cls.__name__.lower()}{n}-", dir=work))
    tool = tool_cls(root, n)
    tool.setup()
    params = [0] * n
    tool.write(params)
    build = timed(tool.cmd(), cwd=root, env=tool.env())[0]
    # a first no-op run warms the OS caches, not counted
    timed(tool.cmd(), cwd=root, env=tool.env())
    noop = [timed(tool.cmd(), cwd=root, env=tool.env()) for _ in range(reps)]
    mid = n // 2
    rerun = []
    for r in range(reps):
        params[mid] = r + 1  # a value not used before: `mid` and everything after reruns
        tool.write(params)
        rerun.append(timed(tool.cmd(), cwd=root, env=tool.env()))
    final = root / ("s%d.txt" % (n - 1))
    if tool_cls is Xp:  # check the chain really ran: the last output holds every line
        show = sh([XP_BIN, "show", str(tool.toml), "--cache-dir", str(tool.store), "--json"]).stdout
        row = next(r for r in json.loads(show) if r["step"] == f"s{n - 1}")
        final = Path(next(o["path"] for o in row["outputs"] if o["name"] == "out"))
    lines = final.read_text().splitlines()
    assert len(lines) == n and lines[mid] == f"p={reps}", (tool_cls.name, n, lines[:3], lines[mid])
    shutil.rmtree(root, ignore_errors=True)
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    return build, (med(noop, 0), med(noop, 1)), (med(rerun, 0), med(rerun, 1)), n - mid


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sizes", default="13,103")
    ap.add_argument("--tools", default="xp,dvc,snakemake")
    a = ap.parse_args()
    tools = a.tools.split(",")
    sizes = [int(s) for s in a.sizes.split(",")]
    ensure_venv(tools)
    if "xp" in tools and not os.access(XP_BIN, os.X_OK):
        sys.exit(f"no xp binary at {XP_BIN} (set XP_BIN)")

    cpu = next((l.split(":", 1)[1].strip() for l in sh(["lscpu"]).stdout.splitlines()
                if l.startswith("Model name")), platform.processor())
    print(f"cpu: {cpu}, {os.cpu_count()} threads; load average at start {os.getloadavg()[0]:.2f}")
    print(f"python {platform.python_version()}, {sh(['sh', '-c', 'uname -sr']).stdout.strip()}")
    for t in tools:
        print("version:", TOOLS[t](Path("."), 0).version())
    print(f"median of {a.reps} repetitions; wall clock; each run a fresh process\n")

    work = Path(tempfile.mkdtemp(prefix="xp-bench-runners-"))
    rows = []
    try:
        base = {}
        for n in sizes:
            k = n - n // 2
            bs = [baseline(Path(tempfile.mkdtemp(dir=work)), k) for _ in range(a.reps)]
            b = (statistics.median(x[0] for x in bs), statistics.median(x[1] for x in bs))
            for t in tools:
                build, noop, rerun, k = bench(TOOLS[t], n, a.reps, work)
                over = ((rerun[0] - b[0]) / k, (rerun[1] - b[1]) / k)
                rows.append((TOOLS[t].name, n, build, noop, k, rerun, b, over))
                print(f"  {TOOLS[t].name} {n}: build {build:.2f} s, no-op {noop[0] * 1e3:.0f} ms, "
                      f"rerun {k} {rerun[0]:.2f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}\n")
    print("Wall clock, then CPU (user + system of the tool and its children) in parentheses.\n")
    print("| tool | steps | first build s | no-op ms | steps rerun | rerun s | sh baseline s "
          "| overhead per executed step ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, n, build, noop, k, rerun, b, over in rows:
        print(f"| {name} | {n} | {build:.2f} | {noop[0] * 1e3:.1f} ({noop[1] * 1e3:.0f}) | {k} "
              f"| {rerun[0]:.3f} ({rerun[1]:.3f}) | {b[0]:.3f} ({b[1]:.3f}) "
              f"| {over[0] * 1e3:.1f} ({over[1] * 1e3:.1f}) |")
    xp = {n: r for r in rows if r[0] == "xp" for n in [r[1]]}
    if 103 in xp:
        r = xp[103]
        noop, over = r[3][0], r[7][0]
        print(f"\nxp at 103 steps, wall clock: no-op {noop * 1e3:.1f} ms (target < 20: "
              f"{'met' if noop < 0.020 else 'missed'}), {over * 1e3:.1f} ms overhead per executed step "
              f"(target < 5: {'met' if over < 0.005 else 'missed'}; CPU {r[7][1] * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
