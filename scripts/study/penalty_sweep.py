#!/usr/bin/env python3
"""Sweeps the miniature's repetition penalty over seeds and prints the collapse
statistic of docs/mini-collapse.md for each penalty (scripts/study/collapse_stat.py).

For every seed S and penalty P it runs

  xp run EXPERIMENT --set experiment.seed=S \
      --set loop.gen.steps.synthesize.repetition_penalty=P [--set ...] --cache-dir WORK/seed-S

(one store per seed, so the steps a penalty does not change - corpus, tokenizer,
blocks, init, generation 0's training - run once per seed and are shared by every
penalty), then reads `xp show --json` of the same run. `--set experiment.seed`
reseeds every seeded step, the synthetic corpus included.

Prints, per penalty, the per-seed d_ppl and d_tail, their means and 95 % Student-t
intervals, whether collapse is shown, the median per-sample perplexity under the
generation-0 model of the real data, generation 0's and the last generation's text
(seed Figure 1, summarised; means over seeds), and the wall and CPU seconds of a
seed's run (the first penalty's runs include the shared steps). Writes everything to
WORK/sweep.json. Run by hand, not in CI:

  cargo build --release
  python3 scripts/study/penalty_sweep.py --seeds 0,1,2 --penalties 1.0,1.5,2.0,2.5,3.0

XP defaults to the checkout's target/release/xp ($XP_BIN overrides it).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import collapse_stat  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def xp_args(args, seed, penalty):
    sets = [f"experiment.seed={seed}", f"loop.gen.steps.synthesize.repetition_penalty={penalty}"]
    sets += args.set
    out = [args.experiment]
    for s in sets:
        out += ["--set", s]
    out += ["--cache-dir", str(Path(args.work) / f"seed-{seed}")]
    return out


def run_one(args, seed, penalty):
    common = xp_args(args, seed, penalty)
    wall0, cpu0 = time.perf_counter(), children_cpu_s()
    run = subprocess.run([args.xp, "run", *common, "--jobs", str(args.jobs)], capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall0, children_cpu_s() - cpu0
    if run.returncode != 0:
        sys.exit(f"xp run failed (seed {seed}, penalty {penalty}):\n{run.stderr}")
    show = subprocess.run([args.xp, "show", *common, "--json"], capture_output=True, text=True, check=True)
    rows = json.loads(show.stdout)
    Path(args.work, f"show-p{penalty}-s{seed}.json").write_text(show.stdout)
    values = collapse_stat.seed_values(rows)
    fig1 = collapse_stat.step_metrics(rows, collapse_stat.TEXT_EVAL_STEP)
    last = values["last_generation"]
    values["fig1_median"] = {
        "real": fig1["blocks.train"]["median"],
        "gen0": fig1["synthesize@0.blocks"]["median"],
        "last": fig1[f"synthesize@{last}.blocks"]["median"],
    }
    values.update(seed=seed, penalty=penalty, wall_s=wall, cpu_s=cpu)
    return values


def mean(xs):
    return sum(xs) / len(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", default=str(ROOT / "experiments/mini.toml"))
    ap.add_argument("--xp", default=os.environ.get("XP_BIN", str(ROOT / "target/release/xp")))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--penalties", default="1.5,1.75,2.0,2.25,2.5,2.75,3.0")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="further --set for every run (e.g. the structure of a variant)")
    ap.add_argument("--work", default="penalty-sweep", help="stores and outputs (one store per seed)")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    penalties = [float(p) for p in args.penalties.split(",")]
    Path(args.work).mkdir(parents=True, exist_ok=True)

    rows = []
    for penalty in penalties:
        per_seed = []
        for seed in seeds:
            v = run_one(args, seed, penalty)
            print(
                f"penalty {penalty} seed {seed}: d_ppl {v['d_ppl']:+.1f} d_tail {v['d_tail']:+.4f} "
                f"({v['wall_s']:.1f} s wall, {v['cpu_s']:.1f} s CPU)",
                file=sys.stderr,
            )
            per_seed.append(v)
        rows.append({"penalty": penalty, "seeds": per_seed, **collapse_stat.statistic(per_seed)})
    Path(args.work, "sweep.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))

    fmt = collapse_stat.fmt_interval
    print(f"seeds {','.join(map(str, seeds))}; extra settings: {' '.join(args.set) or 'none'}")
    print()
    print("| penalty | d_ppl per seed | d_ppl mean [95% CI] | d_tail per seed | d_tail mean [95% CI] "
          "| collapse | Fig. 1 median ppl: real / gen 0 / last | s per seed (wall / CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["seeds"]
        med = [mean([v["fig1_median"][k] for v in s]) for k in ("real", "gen0", "last")]
        print(
            f"| {r['penalty']} "
            f"| {', '.join(format(v['d_ppl'], '+.1f') for v in s)} | {fmt(r['d_ppl'], 1)} "
            f"| {', '.join(format(v['d_tail'], '+.4f') for v in s)} | {fmt(r['d_tail'], 4)} "
            f"| {'shown' if r['collapse_shown'] else 'not shown'} "
            f"| {med[0]:.1f} / {med[1]:.1f} / {med[2]:.1f} "
            f"| {mean([v['wall_s'] for v in s]):.0f} / {mean([v['cpu_s'] for v in s]):.0f} |"
        )


if __name__ == "__main__":
    main()
