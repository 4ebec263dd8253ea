#!/usr/bin/env python3
"""perfpilot's NAB scores side by side with two PyPI peers, and throughput.

Run from the repository root (any python3; it re-runs itself in
target/nabvenv with river and ruptures installed if they are missing):

    python3 crates/baseline-lab/benches/nab_peers.py --data ../shared/nab

Peers, each run over every row of every NAB series, once, in order, one
parameter set for all files, writing per-row scores in NAB's results layout
under target/nab-peers/<peer>/<category>/<peer>_<file>.csv:

- riverHST: river's HalfSpaceTrees on the value, scaled to [0, 1] by river's
  streaming MinMaxScaler (as river's documentation pairs them); the row is
  scored before the model learns it.
- rupturesKernelCPD: ruptures' KernelCPD (linear kernel, i.e. the l2 cost)
  asked for one change point in the trailing window of the last 64 rows.
  The row's score is the cost reduction of that split, relative to the
  variance of everything seen so far, mapped to [0, 1) by g / (1 + g), and
  only while the split lies in the newest quarter of the window, so a
  change is reported when it first becomes visible (at least `min_size`
  rows after it happens), not for as long as it stays in the window. No
  look-ahead: the score of row t uses rows up to t only.

The Rust scorer (the `nab` example with --score-results) scores them under
NAB's rules, and perfpilot's own detector runs through the same example.
Throughput is rows per second through each detector's update loop, file
reading and writing excluded.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / "target" / "nabvenv"


def ensure_deps():
    """Re-run under target/nabvenv (created on demand) unless river and
    ruptures import here."""
    try:
        import river  # noqa: F401
        import ruptures  # noqa: F401

        return
    except ImportError:
        pass
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit("nab_peers: river/ruptures still missing in " + str(VENV))
    if not python.exists():
        print(f"creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    have = subprocess.run([str(python), "-c", "import river, ruptures"], capture_output=True)
    if have.returncode != 0:
        print("installing river and ruptures into the venv", file=sys.stderr)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "river", "ruptures"], check=True
        )
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def load_corpus(data):
    windows = json.loads((data / "labels" / "combined_windows.json").read_text())
    corpus = []
    for name in sorted(windows):
        with open(data / "data" / name, newline="") as f:
            rows = list(csv.DictReader(f))
        corpus.append(
            (
                name,
                [r["timestamp"] for r in rows],
                [float(r["value"]) for r in rows],
                [(a[:19], b[:19]) for a, b in windows[name]],
            )
        )
    return corpus


def run_river_hst(values):
    from river import anomaly, preprocessing

    scaler = preprocessing.MinMaxScaler()
    model = anomaly.HalfSpaceTrees(seed=42)
    out = []
    for v in values:
        x = {"value": v}
        scaler.learn_one(x)
        xs = scaler.transform_one(x)
        out.append(model.score_one(xs))
        model.learn_one(xs)
    return out


def run_ruptures_kcpd(values, width=64, min_size=4):
    import numpy as np
    import ruptures as rpt

    x = np.asarray(values, dtype=float)
    out = [0.0] * len(x)
    # Running mean and variance of everything seen so far (Welford), the
    # scale a split's gain is measured against.
    mean, m2 = 0.0, 0.0
    for t in range(len(x)):
        d = x[t] - mean
        mean += d / (t + 1)
        m2 += d * (x[t] - mean)
        if t + 1 < width:
            continue
        var = m2 / (t + 1)
        if var <= 0.0:
            continue
        seg = x[t + 1 - width : t + 1].reshape(-1, 1)
        algo = rpt.KernelCPD(kernel="linear", min_size=min_size).fit(seg)
        bkp = algo.predict(n_bkps=1)[0]
        if bkp < width - width // 4:
            continue
        cost = algo.cost
        gain = cost.error(0, width) - cost.error(0, bkp) - cost.error(bkp, width)
        g = max(gain, 0.0) / (width * var)
        out[t] = g / (1.0 + g)
    return out


PROFILES = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]

PEERS = {
    "riverHST": run_river_hst,
    "rupturesKernelCPD": run_ruptures_kcpd,
}


def write_results(out_dir, peer, name, timestamps, values, scores, windows):
    category, file = name.split("/", 1)
    path = out_dir / peer / category / f"{peer}_{file}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "anomaly_score", "label"])
        for ts, v, s in zip(timestamps, values, scores):
            label = int(any(a <= ts <= b for a, b in windows))
            w.writerow([ts, repr(v), repr(float(s)), label])


def nab_example(root, args):
    exe = root / "target" / "release" / "examples" / "nab"
    out = subprocess.run([str(exe), *args], check=True, capture_output=True, text=True)
    return out.stdout


def parse_scores(text):
    """Per profile: (score at NAB's hill-climbed threshold, score at the best
    threshold), from the report's table."""
    scores = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == 8 and cells[0] in PROFILES:
            scores[cells[0]] = (cells[3], cells[7])
    return scores


def main():
    ensure_deps()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("PERFPILOT_NAB_DIR", str(ROOT.parent / "shared" / "nab"))
    ap.add_argument("--data", default=default_data, help="NAB checkout (data/, labels/, config/)")
    ap.add_argument("--out", default=str(ROOT / "target" / "nab-peers"))
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    args = ap.parse_args()
    data, out_dir = Path(args.data).resolve(), Path(args.out)

    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "perfpilot-baseline-lab", "--example", "nab"],
        cwd=ROOT,
        check=True,
    )
    corpus = load_corpus(data)
    points = sum(len(v) for _, _, v, _ in corpus)

    rows = []
    text = nab_example(ROOT, ["--data", str(data)])
    m = re.search(r"([\d.]+) points/s", text)
    rows.append(("perfpilot", parse_scores(text), float(m.group(1)) if m else None))

    for peer in [p for p in args.peers.split(",") if p]:
        run = PEERS[peer]
        elapsed = 0.0
        for name, timestamps, values, windows in corpus:
            start = time.perf_counter()
            scores = run(values)
            elapsed += time.perf_counter() - start
            write_results(out_dir, peer, name, timestamps, values, scores, windows)
        print(f"{peer}: {points} points in {elapsed:.1f} s", file=sys.stderr)
        text = nab_example(ROOT, ["--data", str(data), "--score-results", str(out_dir / peer)])
        rows.append((peer, parse_scores(text), points / elapsed))

    print(f"NAB ({data}): {len(corpus)} files, {points} points")
    print("score at NAB's hill-climbed threshold (score at the best threshold)")
    print(f"{'detector':<20}" + "".join(f"{p:>22}" for p in PROFILES) + f"{'points/s':>14}")
    for name, scores, tput in rows:
        cells = ""
        for p in PROFILES:
            nab, best = scores.get(p, ("-", "-"))
            cells += f"{f'{nab} ({best})':>22}"
        print(f"{name:<20}{cells}{(f'{tput:,.0f}' if tput else '-'):>14}")


if __name__ == "__main__":
    main()
