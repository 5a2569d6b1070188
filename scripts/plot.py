#!/usr/bin/env python3
"""Plots for vgg-dp studies (matplotlib, Agg backend: no display needed).

  scripts/plot.py scaling REPORT.csv [--out DIR]
      REPORT.csv from `vgg-dp report --csv` (strong or weak scaling). Writes
        scaling-throughput.png  images/s vs ranks, with the ideal linear line
        scaling-efficiency.png  parallel efficiency vs ranks
        scaling-breakdown.png   mean step time per rank count, stacked: data,
                                forward, backward, update, exposed communication

  scripts/plot.py sweep A.csv [B.csv ...] [--out DIR] [--labels A,B,...]
      Batch-size sweeps (scripts/batch_sweep.sh; columns batch_size, mean, sd,
      images_per_second). Writes the notebook's two plots:
        sweep-time.png          time per batch vs batch size, one line per CSV
        sweep-ratio.png         A's time / B's time per batch size (first two
                                CSVs only, as the notebook's macbook/desktop)
      and sweep-throughput.png (images/s vs batch size).
      A run's label is --labels, else its file name without .csv and a
      leading "sweep-" (batch_sweep.sh writes sweep-<label>.csv).

--out defaults to the first CSV's folder. The PNG paths are printed, one per
line. Exit status: 0 done, 2 bad input, 3 matplotlib missing.
"""
import argparse
import csv
import os
import sys


def fail(message, status=2):
    print(f"plot.py: {message}", file=sys.stderr)
    sys.exit(status)


def pyplot():
    try:
        import matplotlib
    except ImportError:
        fail(f"matplotlib is not installed for {sys.executable}: run scripts/setup.sh "
             f"(or: {os.path.basename(sys.executable)} -m pip install matplotlib)", 3)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def read_csv(path, needed):
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    if not rows:
        fail(f"{path} has no rows")
    missing = [c for c in needed if c not in rows[0]]
    if missing:
        fail(f"{path} lacks the column(s) {', '.join(missing)}; is it the right kind of CSV?")
    return rows


def number(row, key, path, kind=float):
    text = row.get(key, "")
    try:
        return kind(text)
    except (TypeError, ValueError):
        fail(f"{path}: column {key} holds {text!r}, not a number")


def save(fig, out, name):
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(path)
    return path


# --- scaling -----------------------------------------------------------------

SCALING_COLUMNS = ["ranks", "images_per_second", "efficiency", "step_mean_s",
                   "data_s", "forward_s", "backward_s", "optimizer_s", "exposed_s"]


def scaling(args):
    rows = read_csv(args.csv, SCALING_COLUMNS)
    path = args.csv
    rows.sort(key=lambda r: number(r, "ranks", path, int))
    ranks = [number(r, "ranks", path, int) for r in rows]
    ips = [number(r, "images_per_second", path) for r in rows]
    eff = [number(r, "efficiency", path) for r in rows]
    first = rows[0]
    kind = first.get("kind", "")
    title = " ".join(x for x in [first.get("model", ""),
                                 f"{first['image_size']}×{first['image_size']}" if first.get("image_size") else "",
                                 first.get("mode", ""), f"{kind} scaling" if kind else "scaling"] if x)
    plt = pyplot()
    out = args.out
    written = []

    # Throughput and the ideal: the baseline's images/s times N / N_base.
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ideal = [ips[0] * n / ranks[0] for n in ranks]
    ax.plot(ranks, ideal, "--", color="gray", label="ideal (linear)")
    ax.plot(ranks, ips, "-o", color="tab:blue", label="measured")
    for n, y in zip(ranks, ips):
        ax.annotate(f"{y:.1f}", (n, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.set_xticks(sorted(set(ranks)))
    ax.set_xlabel("ranks")
    ax.set_ylabel("images / s (slowest rank)")
    ax.set_ylim(0, 1.12 * max(ideal + ips + [1e-9]))
    ax.set_title(f"Throughput: {title}")
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(save(fig, out, "scaling-throughput.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.axhline(100, ls="--", color="gray", label="ideal (100%)")
    formula = {"strong": "T_b·N_b / (N·T_N)", "weak": "T_b / T_N"}.get(kind, "")
    ax.plot(ranks, [100 * e for e in eff], "-o", color="tab:green",
            label="measured" + (f": {formula}" if formula else ""))
    for n, e in zip(ranks, eff):
        ax.annotate(f"{100 * e:.0f}%", (n, 100 * e), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.set_xticks(sorted(set(ranks)))
    ax.set_xlabel("ranks")
    ax.set_ylabel("parallel efficiency (%)")
    ax.set_ylim(0, max(110, 110 * max(eff + [0])))
    ax.set_title(f"Efficiency: {title}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    written.append(save(fig, out, "scaling-efficiency.png"))
    plt.close(fig)

    # Step time breakdown (ms, averaged over ranks). The optimizer phase holds
    # the waits for buckets still in flight, so exposed comm is split off it.
    ms = lambda key: [1000 * number(r, key, path) for r in rows]
    data, fwd, bwd, opt, exposed = ms("data_s"), ms("forward_s"), ms("backward_s"), ms("optimizer_s"), ms("exposed_s")
    update = [max(0.0, o - e) for o, e in zip(opt, exposed)]
    parts = [("data", data, "tab:gray"), ("forward", fwd, "tab:blue"), ("backward", bwd, "tab:orange"),
             ("optimizer (update)", update, "tab:green"), ("exposed comm", exposed, "tab:red")]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    x = list(range(len(rows)))
    bottom = [0.0] * len(rows)
    for label, values, color in parts:
        ax.bar(x, values, bottom=bottom, color=color, label=label, width=0.6)
        bottom = [b + v for b, v in zip(bottom, values)]
    steps = ms("step_mean_s")
    ax.plot(x, steps, "kD", markersize=5, label="step (slowest rank)")
    ax.set_ylim(0, 1.3 * max(steps + bottom + [1e-9]))
    ax.set_xticks(x)
    ax.set_xticklabels([f"{n}\n({r.get('batch_per_rank', '?')}/rank)" for n, r in zip(ranks, rows)])
    ax.set_xlabel("ranks (batch per rank)")
    ax.set_ylabel("ms per step (mean over ranks)")
    ax.set_title(f"Step time: {title}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    written.append(save(fig, out, "scaling-breakdown.png"))
    plt.close(fig)
    return written


# --- sweep -------------------------------------------------------------------

SWEEP_COLUMNS = ["batch_size", "mean", "sd", "images_per_second"]


def sweep_label(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.startswith("sweep-") and len(stem) > 6:
        return stem[6:]
    if stem in ("sweep", "report"):
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or stem
    return stem


def sweep(args):
    labels = args.labels.split(",") if args.labels else [sweep_label(p) for p in args.csv]
    if len(labels) != len(args.csv):
        fail(f"--labels names {len(labels)} run(s) for {len(args.csv)} CSV file(s)")
    runs = []
    for path, label in zip(args.csv, labels):
        rows = read_csv(path, SWEEP_COLUMNS)
        points = sorted((number(r, "batch_size", path, int), number(r, "mean", path), number(r, "sd", path),
                         number(r, "images_per_second", path)) for r in rows)
        runs.append((label, points))
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    integer_x = MaxNLocator(integer=True)
    out = args.out
    written = []
    styles = ["-*", "--o", "-.s", ":^", "-v", "--d"]

    # The notebook's first plot: forward-backward time per batch vs batch size.
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (label, points) in enumerate(runs):
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                    fmt=styles[i % len(styles)], capsize=3, label=label)
    ax.set_xlabel("Batch Size")
    ax.xaxis.set_major_locator(integer_x)
    ax.set_ylabel("time / batch (s)")
    ax.set_ylim(bottom=0)
    ax.set_title("VGG benchmark: time per batch" + (f" on {' and '.join(l for l, _ in runs)}" if len(runs) > 1 else f" ({runs[0][0]})"))
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(save(fig, out, "sweep-time.png"))
    plt.close(fig)

    # The notebook's second plot: first run's time over the second's.
    if len(runs) >= 2:
        (la, a), (lb, b) = runs[0], runs[1]
        bt = {p[0]: p[1] for p in b}
        common = [(p[0], p[1] / bt[p[0]]) for p in a if p[0] in bt and bt[p[0]] > 0]
        if not common:
            fail(f"{args.csv[0]} and {args.csv[1]} have no batch size in common")
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        ax.plot([c[0] for c in common], [c[1] for c in common], ls="-", color="orange", marker="*")
        for n, r in common:
            ax.annotate(f"{r:.2f}", (n, r), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
        ax.set_xlabel("Batch Size")
        ax.xaxis.set_major_locator(integer_x)
        ax.margins(y=0.15)
        ax.set_ylabel(f"Times ({la} / {lb})")
        ax.set_title(f"Time per batch: {la} / {lb}")
        ax.grid(alpha=0.3)
        written.append(save(fig, out, "sweep-ratio.png"))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (label, points) in enumerate(runs):
        ax.plot([p[0] for p in points], [p[3] for p in points], styles[i % len(styles)], label=label)
    ax.set_xlabel("Batch Size")
    ax.xaxis.set_major_locator(integer_x)
    ax.set_ylabel("images / s")
    ax.set_ylim(bottom=0)
    ax.set_title("VGG benchmark: throughput")
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(save(fig, out, "sweep-throughput.png"))
    plt.close(fig)
    return written


def main(argv):
    parser = argparse.ArgumentParser(prog="plot.py", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scaling", help="plots from a `vgg-dp report --csv` scaling table")
    p.add_argument("csv", metavar="REPORT.csv")
    p.add_argument("--out", metavar="DIR")
    p.set_defaults(func=scaling)
    p = sub.add_parser("sweep", help="the notebook's batch-size plots from one or more sweep CSVs")
    p.add_argument("csv", metavar="CSV", nargs="+")
    p.add_argument("--out", metavar="DIR")
    p.add_argument("--labels", metavar="A,B,...", help="legend names, one per CSV")
    p.set_defaults(func=sweep)
    args = parser.parse_args(argv)
    first = args.csv if isinstance(args.csv, str) else args.csv[0]
    args.out = args.out or os.path.dirname(os.path.abspath(first))
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        fail(f"--out {args.out}: {e.strerror}")
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
