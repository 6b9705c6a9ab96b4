# `portalloc simulate --plot FILE.png`: ports in use and TIME_WAIT per destination over simulated time,
# failures marked. matplotlib (the `sim` extra) is imported here only, with the Agg backend (no display).
#
# Rules: the figure reads on its own: two panels sharing the time axis (open connections; TIME_WAIT), one
# line per (source, destination) pair for the eight busiest pairs and the total, the range size as a
# dashed line when known, failures per second in a third panel, the first failure as a vertical line.
"""Plot a simulation Result (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from portalloc.sim.result import Result

#: Pairs drawn individually (the rest are in the total).
MAX_LINES = 8


def draw(result: Result, path: str | Path) -> None:
    """Write the figure of ``result`` to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = result.run
    assert run is not None
    times = run.sample_times
    fig, (ax_use, ax_tw, ax_fail) = plt.subplots(3, 1, sharex=True, figsize=(10, 7.5), constrained_layout=True,
                                                 gridspec_kw={"height_ratios": [3, 3, 1.2]})
    sc = result.scenario
    fig.suptitle(f"{sc.name or 'scenario'} on {sc.kernel}: " + (
        f"runs out at {result.first_failure_s:.1f} s ({sum(result.failed.values()):,} failed)"
        if result.runs_out else f"no failure in {sc.duration:g} s"), fontsize=12)
    busiest = sorted(run.series, key=lambda i: -max(max(a, b) for a, b in run.series[i]))[:MAX_LINES]
    for i in busiest:
        p = run.pairs[i]
        label = f"{p.source} → {p.dest[0]}:{p.dest[1]}" + (f" (host {p.host})" if sc.hosts > 1 else "")
        use = [a for a, _ in run.series[i]]
        tw = [b for _, b in run.series[i]]
        ax_use.plot(times[-len(use):], use, label=label, linewidth=1.2)
        ax_tw.plot(times[-len(tw):], tw, label=label, linewidth=1.2)
    ax_use.plot(times, [r["in_use"] for r in result.timeline], color="black", linewidth=1.8, label="total")
    ax_tw.plot(times, [r["time_wait"] for r in result.timeline], color="black", linewidth=1.8, label="total")
    if result.range_size:
        for ax in (ax_use, ax_tw):
            top = max((line.get_ydata().max() for line in ax.get_lines() if len(line.get_ydata())), default=0)
            if top >= 0.2 * result.range_size:        # the range line only where it is the scale that matters
                ax.axhline(result.range_size, color="grey", linestyle="--", linewidth=1)
                ax.annotate(f"range: {result.range_size:,} ports", (1, result.range_size),
                            xycoords=("axes fraction", "data"), xytext=(-4, 3), textcoords="offset points",
                            ha="right", fontsize=8, color="grey")
    ax_fail.bar([max(0.0, t - 1) for t in times], [r["failed"] for r in result.timeline], width=0.9, align="edge",
                color="red")   # row t counts the second that ends at t
    ax_fail.set_ylabel("failed / s")
    if run.failure_times:
        for ax in (ax_use, ax_tw, ax_fail):
            ax.axvline(run.failure_times[0][0], color="red", linewidth=0.8, linestyle=":")
        ax_use.annotate(f"first failure {run.failure_times[0][0]:.1f} s", (run.failure_times[0][0], 1),
                        xycoords=("data", "axes fraction"), xytext=(3, -12), textcoords="offset points",
                        fontsize=8, color="red")
    ax_use.set_ylabel("connections open")
    ax_tw.set_ylabel("TIME_WAIT sockets")
    ax_fail.set_xlabel("simulated time (s)")
    ax_fail.grid(True, alpha=0.3)
    for ax in (ax_use, ax_tw):
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=-0.02 * max(1, ax.get_ylim()[1]))
        ax.ticklabel_format(axis="y", style="plain")
    handles, labels = ax_tw.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=False))
    ax_tw.legend(uniq.values(), uniq.keys(), fontsize=8, loc="upper left", ncols=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
