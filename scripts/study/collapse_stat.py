#!/usr/bin/env python3
"""The miniature's collapse statistic over seeds (issue 17, item 4), fixed in advance.

Per seed s, from that seed's `xp show --json` (one run per seed, `--set
experiment.seed=s`), or from one `xp show --json` of a file with replicates
(`experiment.seeds`, steps named `test@3[seed=1]`):

  d_ppl(s)  = test perplexity of held-out real text at the last generation minus at
              generation 0: `corpus_perplexity` of set `blocks.test` in the metrics of
              step `test@LAST` minus that of `test@0`;
  d_tail(s) = tail coverage of the text generated at the last generation minus at
              generation 0: `tail_coverage` of set `synthesize@LAST.blocks` minus that
              of `synthesize@0.blocks`, both in the metrics of step `fig1` (every
              generation's text against the real training data's rare tail).

Over the seeds: mean, sample standard deviation and the 95 % Student-t interval
mean ± t(0.975, n-1) · sd / √n. Collapse is shown when the interval of d_ppl lies
above 0 and the interval of d_tail below 0.

Usage:
  collapse_stat.py SHOW_JSON...          `xp show --json` output files: one per seed, or
                                         one with every replicate
  collapse_stat.py --json SHOW_JSON...   the same, as one JSON object

Plain python3 (standard library only); scripts/study/penalty_sweep.py imports it.
"""

import argparse
import json
import math
import re
import sys

TEST_STEP = "test"
TEST_SET = "blocks.test"
TEXT_EVAL_STEP = "fig1"


def student_t_cdf(x, dof):
    """P(T <= x) for Student's t with `dof` degrees of freedom: 1/2 plus the density's
    integral from 0 to |x| (composite Simpson rule, 20,000 panels; the density is smooth
    and bounded, so the error is far below the digits printed)."""
    log_norm = (
        math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    )

    def density(u):
        return math.exp(log_norm - (dof + 1) / 2 * math.log1p(u * u / dof))

    a, b, panels = 0.0, abs(x), 20_000
    h = (b - a) / panels
    total = density(a) + density(b)
    for i in range(1, panels):
        total += (4 if i % 2 else 2) * density(a + i * h)
    half = total * h / 3
    return 0.5 + half if x >= 0 else 0.5 - half


def student_t_quantile(p, dof):
    """The x with P(T <= x) = p, for p in (0.5, 1), by bisection."""
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, dof) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if student_t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def interval(values, level=0.95):
    """Mean, sample sd, n and the Student-t interval of the mean; the interval is None
    for fewer than two values (no spread to measure)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "low": None, "high": None}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = student_t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half}


def step_metrics(rows, step):
    for row in rows:
        if row["step"] == step:
            if row["metrics"] is None:
                raise SystemExit(f"step `{step}` has no metrics: run the experiment first")
            return row["metrics"]
    raise SystemExit(f"no step `{step}` in the `xp show --json` output")


REPLICATE = re.compile(r"\[seed=(\d+)\]")


def replicates(rows):
    """The rows of each replicate seed, with `[seed=N]` taken out of step names and of
    the labels of their metrics' sets; steps without a seed (the shared data steps)
    belong to every replicate. A file without replicates gives one entry, `None`."""
    for row in rows:
        if "[" in row["step"] and not REPLICATE.search(row["step"]):
            raise SystemExit(f"step `{row['step']}` is a sweep point other than a seed: "
                             "give this script one point's steps")
    seeds = sorted({int(m.group(1)) for row in rows if (m := REPLICATE.search(row["step"]))})
    if not seeds:
        return {None: rows}
    out = {}
    for seed in seeds:
        tag = f"[seed={seed}]"
        mine = []
        for row in rows:
            m = REPLICATE.search(row["step"])
            if m and int(m.group(1)) != seed:
                continue
            metrics = row["metrics"]
            if isinstance(metrics, dict):
                metrics = {k.replace(tag, ""): v for k, v in metrics.items()}
            mine.append({**row, "step": row["step"].replace(tag, ""), "metrics": metrics})
        out[seed] = mine
    return out


def seed_values(rows):
    """The per-seed numbers from one `xp show --json` output (a list of step rows)."""
    gens = [
        int(m.group(1))
        for row in rows
        if (m := re.fullmatch(rf"{TEST_STEP}@(\d+)", row["step"]))
    ]
    if not gens or min(gens) != 0:
        raise SystemExit(f"no `{TEST_STEP}@0` step in the `xp show --json` output")
    last = max(gens)
    ppl = [step_metrics(rows, f"{TEST_STEP}@{g}")[TEST_SET]["corpus_perplexity"] for g in (0, last)]
    fig1 = step_metrics(rows, TEXT_EVAL_STEP)
    tail = [fig1[f"synthesize@{g}.blocks"]["tail_coverage"] for g in (0, last)]
    return {
        "last_generation": last,
        "test_ppl": ppl,
        "tail_coverage": tail,
        "d_ppl": ppl[1] - ppl[0],
        "d_tail": tail[1] - tail[0],
    }


def statistic(per_seed):
    """The intervals over seeds and the verdict, from a list of `seed_values` results."""
    d_ppl = interval([s["d_ppl"] for s in per_seed])
    d_tail = interval([s["d_tail"] for s in per_seed])
    shown = (
        d_ppl["low"] is not None
        and d_ppl["low"] > 0
        and d_tail["high"] is not None
        and d_tail["high"] < 0
    )
    return {"d_ppl": d_ppl, "d_tail": d_tail, "collapse_shown": shown}


def fmt_interval(iv, digits):
    if iv["low"] is None:
        return f"{iv['mean']:.{digits}f} (n={iv['n']}, no interval)"
    return f"{iv['mean']:.{digits}f} [{iv['low']:.{digits}f}, {iv['high']:.{digits}f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("show_json", nargs="+", help="`xp show --json` output, one file per seed")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    per_seed = []
    for path in args.show_json:
        with open(path) as f:
            for seed, rows in replicates(json.load(f)).items():
                name = path if seed is None else f"{path} seed {seed}"
                per_seed.append({"file": name, **seed_values(rows)})
    stat = statistic(per_seed)
    if args.json:
        print(json.dumps({"seeds": per_seed, **stat}, indent=2))
        return
    for s in per_seed:
        print(
            f"{s['file']}: test ppl {s['test_ppl'][0]:.1f} -> {s['test_ppl'][1]:.1f} "
            f"(d {s['d_ppl']:+.1f}), tail coverage {s['tail_coverage'][0]:.4f} -> "
            f"{s['tail_coverage'][1]:.4f} (d {s['d_tail']:+.4f})"
        )
    print(f"d_ppl  mean [95% t-interval]: {fmt_interval(stat['d_ppl'], 1)}")
    print(f"d_tail mean [95% t-interval]: {fmt_interval(stat['d_tail'], 4)}")
    print("collapse shown" if stat["collapse_shown"] else "collapse NOT shown")


if __name__ == "__main__":
    sys.exit(main())
