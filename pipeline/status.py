"""A sweep's state from the store: counts, failures, throughput and ETA."""

from __future__ import annotations

from typing import Any

from db import TRIAL_STATUSES, Store


def sweep_status(store: Store, sweep: str | None = None, *, window_s: float = 600.0, failures: int = 10) -> dict[str, Any]:
    """Everything ``cre-pipeline status`` shows, as one JSON-serialisable dict."""
    counts = store.counts(sweep)
    by = store.counts_by(sweep, by=("model", "dataset"))
    table: dict[tuple[str, str], dict[str, int]] = {}
    for row in by:
        key = (row["model"], row["dataset"])
        table.setdefault(key, {s: 0 for s in TRIAL_STATUSES})[row["status"]] = row["count"]
    rate = store.throughput(sweep, window_s=window_s)
    remaining = counts.get("pending", 0) + counts.get("running", 0) + counts.get("interrupted", 0)
    per_s = rate.get("completed_per_s") or 0.0
    eta_s = remaining / per_s if per_s > 0 and remaining else (0.0 if not remaining else None)
    return {
        "sweep": sweep,
        "store": store.url,
        "total": sum(counts.values()),
        "counts": counts,
        "by_model_dataset": [
            {"model": m, "dataset": d, **c, "total": sum(c.values())} for (m, d), c in sorted(table.items())
        ],
        "recent_failures": [
            {"trial_id": t.trial_id, "spec": t.spec.short(), "attempts": t.attempts, "error": t.last_error}
            for t in store.recent_failures(sweep, limit=failures)
        ],
        "throughput": rate,
        "eta_s": eta_s,
    }


def format_status(info: dict[str, Any]) -> str:
    """The human-readable table of ``sweep_status``."""
    lines = []
    title = f"sweep {info['sweep']}" if info["sweep"] else "all sweeps"
    lines.append(f"{title} in {info['store']}: {info['total']} trials")
    c = info["counts"]
    lines.append("  " + "  ".join(f"{s} {c.get(s, 0)}" for s in TRIAL_STATUSES))
    if info["by_model_dataset"]:
        lines.append("")
        header = f"  {'model':<14}{'dataset':<15}" + "".join(f"{s:>12}" for s in TRIAL_STATUSES) + f"{'total':>8}"
        lines.append(header)
        for row in info["by_model_dataset"]:
            lines.append(
                f"  {row['model']:<14}{row['dataset']:<15}" + "".join(f"{row[s]:>12}" for s in TRIAL_STATUSES)
                + f"{row['total']:>8}"
            )
    rate = info["throughput"]
    lines.append("")
    window = rate.get("window_s", 0)
    lines.append(
        f"  last {int(window // 60)} min: {rate.get('completed', 0)} trials completed, {rate.get('epochs', 0)} epochs"
        f" ({rate.get('completed_per_s', 0.0) * 3600:.0f} trials/h, {rate.get('epochs_per_s', 0.0):.1f} epochs/s)"
    )
    eta = info["eta_s"]
    lines.append(f"  ETA: {_human(eta) if eta is not None else 'unknown (no recent progress)'}")
    if info["recent_failures"]:
        lines.append("")
        lines.append("  recent failures:")
        for f in info["recent_failures"]:
            lines.append(f"    {f['trial_id'][:12]}  {f['spec']}  (attempts {f['attempts']}): {f['error']}")
    return "\n".join(lines)


def _human(seconds: float) -> str:
    seconds = int(round(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d {h}h {m}m"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s}s"
