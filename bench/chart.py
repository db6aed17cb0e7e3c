"""A bar chart of bench/bench.py's JSON: pyrunc against runc per verb, the pyrunc/runc ratio over each pair.

    python3 bench/chart.py RESULTS.json OUT.svg

Needs matplotlib (the `bench` extra: pip install '.[bench]'), never a dependency of pyrunc.  The SVG keeps its
text as text and carries no date, so reruns diff by their figures only.
"""

import json
import sys


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: chart.py RESULTS.json OUT.svg|OUT.png")
    with open(sys.argv[1]) as f:
        r = json.load(f)
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "pyrunc-bench", "font.size": 10})
    import matplotlib.pyplot as plt

    verbs = list(r["verbs"])
    py = [r["verbs"][v]["pyrunc_ms"] for v in verbs]
    rc = [r["verbs"][v]["runc_ms"] for v in verbs]
    floor = r["floor_ms"]["python -I -S -c pass"]
    x = range(len(verbs))
    w = 0.38
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar([i - w / 2 for i in x], py, w, label="pyrunc", color="#3572A5")
    ax.bar([i + w / 2 for i in x], rc, w, label="runc 1.1", color="#9aa0a6")
    ax.axhline(floor, color="#d62728", linestyle="--", linewidth=1, label=f"python -I -S -c pass ({floor:.1f} ms)")
    for i, v in enumerate(verbs):
        ax.annotate(f"{r['verbs'][v]['vs_runc']:.2f}x", (i, max(py[i], rc[i])), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=9)
    ax.set_xticks(list(x), verbs)
    ax.set_ylabel("ms (median)")
    ax.set_title(f"pyrunc vs runc, median of {r['n']} interleaved rounds (labels: pyrunc / runc)")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylim(0, max(py + rc) * 1.15)
    fig.tight_layout()
    fig.savefig(sys.argv[2], metadata={"Date": None} if sys.argv[2].endswith(".svg") else None)


if __name__ == "__main__":
    main()
