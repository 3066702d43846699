"""The README tables for bench/gpu_kernels.py's JSON (stage 2 of bench/gpu_check.sh):
effseg's time against each anchor's, per case and dtype, with how far apart the outputs
are; failures and anchors that could not run are said, not dropped."""
from __future__ import annotations


def _ms(v) -> str:
    if v is None:
        return "—"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _pairs(rows: list[dict]) -> list[str]:
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["case"], r["dtype"]), []).append(r)
    lines = []
    for (case, dtype), rs in groups.items():
        ours = next((r for r in rs if r.get("role") == "effseg"), None)
        if ours is None:
            continue
        ours_ms = ours.get("median_ms")
        head = f"| {case} | {dtype} | {_ms(ours_ms) if 'error' not in ours else 'error'} |"
        for a in (r for r in rs if r.get("role") == "anchor"):
            if "error" in a:
                lines.append(f"{head} {a['impl']} | error: {a['error'][:80]} | — | — |")
                continue
            speed = f"{a['median_ms'] / ours_ms:.3g}x" if ours_ms else "—"
            diff = a.get("max_rel_diff_vs_effseg")
            lines.append(f"{head} {a['impl']} | {_ms(a['median_ms'])} | {speed} | "
                         f"{'—' if diff is None else f'{diff:.1e}'} |")
        if "error" in ours:
            lines.append(f"{head} — | error: {ours['error'][:120]} | — | — |")
    return lines


def _losses(res: dict) -> list[str]:
    lines = ["| variant | step ms | vs CE alone |", "|---|---:|---:|"]
    for r in res.get("results", []):
        over = r.get("overhead_vs_ce")
        lines.append(f"| {r['variant']} ({r.get('what', '')}) | {_ms(r['median_ms'])} | "
                     f"{'—' if over is None else f'{over:+.0%}'} |")
    return lines


def gpu_kernel_section(res: dict, src: str, machine: str) -> list[str]:
    out = [f"### Kernels on the GPU vs their anchors ({machine}; `{src}`)", "",
           (f"{res.get('method', '')}. Speed-up: anchor time / effseg time (> 1: effseg "
            "faster); diff: max |anchor - effseg| / max |effseg|."), ""]
    for name, entry in res.get("kernels", {}).items():
        out.append(f"**{name}**")
        out.append("")
        if "error" in entry:
            out += [f"Failed: {entry['error'][:300]}", ""]
            continue
        if name == "losses":
            out += _losses(entry) + [""]
            continue
        out += ["| case | dtype | effseg ms | anchor | ms | speed-up | diff |",
                "|---|---|---:|---|---:|---:|---:|"]
        out += _pairs(entry.get("rows", []))
        skipped = entry.get("skipped") or {}
        if skipped:
            out += ["", "Not run: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "."]
        out.append("")
    return out
