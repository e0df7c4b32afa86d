"""Plot a soak report (the JSON `naksha-bench soak --out X.md` writes next to X.md) as X.png.

Four panels over time: resident memory, open files, collection size
(points and segments), and p50/p99 latency per operation. Flat lines after
the warm-up are the goal.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    with open(src) as f:
        report = json.load(f)
    samples = report["samples"]
    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    ax = axes[0][0]
    ax.plot(t, [s["rss_bytes"] / 1e6 for s in samples], color="tab:red")
    ax.set_ylabel("RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("resident memory")
    ax = axes[0][1]
    ax.plot(t, [s["open_files"] for s in samples], color="tab:blue")
    ax.set_ylabel("open file descriptors")
    ax.set_ylim(bottom=0)
    ax.set_title("open files")
    ax = axes[1][0]
    ax.plot(t, [s["points"] for s in samples], color="tab:green", label="points")
    ax.set_ylabel("live points")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(t, [s["segments"] for s in samples], color="tab:gray", linestyle=":", label="segments")
    ax2.set_ylabel("segments")
    ax2.set_ylim(bottom=0)
    ax.set_title("collection")
    ax.set_xlabel("minutes")
    ax = axes[1][1]
    names = [o[0] for o in samples[0]["ops"]]
    colors = ["tab:red", "tab:orange", "tab:purple", "tab:blue"]
    for i, name in enumerate(names):
        ax.plot(t, [s["ops"][i][3] for s in samples], color=colors[i % 4], label=f"{name} p50")
        ax.plot(t, [s["ops"][i][4] for s in samples], color=colors[i % 4], linestyle="--", label=f"{name} p99")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency per interval")
    ax.set_xlabel("minutes")
    ax.legend(fontsize=7, ncol=2)
    a = report["args"]
    fig.suptitle(
        f"Naksha soak: {a['seconds'] / 60:.0f} min, dim {a['dim']}, id window {a['window']}, flush every {a['flush_points']} points"
    )
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
