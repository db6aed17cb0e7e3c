"""A bar chart of bench/bench.py's JSON: pyrunc against runc per verb, the pyrunc/runc ratio over each pair; next
to it issue 12's targets, each measured ratio against its limit.

    python3 bench/chart.py RESULTS.json OUT.svg

Needs matplotlib (the `bench` extra: pip install '.[bench]'), never a dependency of pyrunc.  The SVG keeps its
text as text and carries no date, so reruns diff by their figures only.
"""

import json
import sys


def targets(ax, r):
    """Issue 12's targets: each measured ratio as a bar, its limit as a tick."""
    rows = []
    for v, x in r["verbs"].items():
        rows.append((f"{v} / {x['target'].split(None, 2)[2]}", x["ratio"], x["limit"]))
    if r.get("parallel"):
        p = r["parallel"]
        rows.append((f"{p['pyrunc']['runs']} runs x{p['pyrunc']['jobs']} / runc", p["ratio"], p["limit"]))
    if r.get("shim"):
        rows.append(("ctr run --rm (runc-v2) / runc", r["shim"]["ratio_b_a"], r["shim"]["limit"]))
    rows.reverse()
    y = range(len(rows))
    ax.barh(list(y), [q for _, q, _ in rows], color=["#2ca02c" if q <= lim else "#ff7f0e" for _, q, lim in rows])
    ax.scatter([lim for _, _, lim in rows], list(y), marker="|", s=250, color="black", label="target", zorder=3)
    for i, (_, q, _) in enumerate(rows):
        ax.annotate(f"{q:.2f}x", (q, i), textcoords="offset points", xytext=(3, -3), fontsize=9)
    ax.set_yticks(list(y), [name for name, _, _ in rows])
    ax.set_xlabel("ratio (lower is better)")
    ax.set_title("issue 12's targets")
    ax.set_xlim(0, max(q for _, q, _ in rows) * 1.2)
    ax.legend(frameon=False, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)


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
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    ax.bar([i - w / 2 for i in x], py, w, label="pyrunc", color="#3572A5")
    ax.bar([i + w / 2 for i in x], rc, w, label="runc", color="#9aa0a6")
    ax.axhline(floor, color="#d62728", linestyle="--", linewidth=1, label=f"python -I -S -c pass ({floor:.1f} ms)")
    for i, v in enumerate(verbs):
        ax.annotate(f"{r['verbs'][v]['vs_runc']:.2f}x", (i, max(py[i], rc[i])), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=9)
    ax.set_xticks(list(x), verbs)
    ax.set_ylabel("ms (median)")
    ax.set_title(f"median of {r['n']} interleaved rounds (labels: pyrunc / runc)")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylim(0, max(py + rc) * 1.15)
    targets(tx, r)
    fig.tight_layout()
    fig.savefig(sys.argv[2], metadata={"Date": None} if sys.argv[2].endswith(".svg") else None)


if __name__ == "__main__":
    main()
