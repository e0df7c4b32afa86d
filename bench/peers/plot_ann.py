"""Plot an ANN report (the JSON `naksha-bench ann --out X.md` writes next to X.md) as X.png.

One panel per sweep (unfiltered, then each filter): recall@k on x, QPS on a
log y axis, one curve per engine, points at each ef. Up and to the right is
better. The title names the dataset, machine-independent parameters and the
number of queries; the markdown next to it names the machine and command.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "naksha": ("tab:red", "o", "-"),
    "naksha-int8": ("tab:red", "s", "--"),
    "naksha-graph": ("tab:pink", "^", ":"),
    "hnsw_rs": ("tab:brown", "v", "-"),
    "usearch": ("tab:green", "D", "-"),
    "hnswlib": ("tab:blue", "o", "-"),
    "faiss": ("tab:purple", "x", "-"),
}


def panel(ax, title, runs, k):
    # The x axis starts just below the lowest recall that any engine reaches at
    # 0.5 or more; curves that stay below it are named in the legend.
    shown = [p["recall"] for r in runs for p in r["curve"] if p["recall"] >= 0.5]
    left = max(0.5, min(shown, default=0.5) - 0.01)
    for r in runs:
        pts = sorted(r["curve"], key=lambda p: p["ef"])
        color, marker, line = STYLE.get(r["name"], (None, ".", "-"))
        best = max(p["recall"] for p in pts)
        label = r["name"] if best >= left else f"{r['name']} (best recall {best:.2f}, off the chart)"
        ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], marker=marker, linestyle=line,
                color=color, label=label, markersize=4)
    ax.set_xlim(left, 1.002)
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{k}")
    ax.set_ylabel("queries/s, one thread (log)")
    ax.set_title(title, fontsize=10)
    ax.axvline(0.95, color="grey", linewidth=0.6, linestyle=":")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        r = json.load(f)
    k = r["args"]["k"]
    sweeps = [("no filter", r["engines"])]
    for s in r.get("filtered", []):
        sweeps.append((f"filter admits {s['percent']}% ({s['admitted']:,} points)", s["runs"]))
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6 * len(sweeps), 5), squeeze=False)
    for ax, (title, runs) in zip(axes[0], sweeps):
        panel(ax, title, runs, k)
    a = r["args"]
    fig.suptitle(f"{r['dataset']}: {r['n']:,} × {r['dim']} {r['metric']}, {r['queries']:,} queries, "
                 f"m={a['m']}, ef_construction={a['ef_construction']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()
