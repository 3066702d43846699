"""`effseg bench` results as a plain-text table, a Markdown table and a PNG plot."""
from __future__ import annotations

import math
from pathlib import Path

COLUMNS = (  # (header, key, format); "ms" adapts the decimals to the magnitude
    ("model", "model", "{}"), ("size", "size", "{}"), ("batch", "batch", "{}"),
    ("dtype", "dtype", "{}"), ("backend", "backend", "{}"),
    ("median ms", "median_ms", "ms"), ("p90 ms", "p90_ms", "ms"),
    ("p99 ms", "p99_ms", "ms"), ("FPS", "fps", "ms"), ("MP/s", "mp_per_s", "ms"),
    ("RSS MB", "host_peak_rss_mb", "{:.0f}"), ("GPU MB", "gpu_peak_mb", "{:.0f}"),
    ("params M", "params_m", "{:.3g}"), ("GFLOPs", "gflops", "{:.3g}"),
    ("max err", "max_abs_err", "{:.1e}"), ("argmax", "argmax_agreement", "{:.2%}"),
    ("x eager", "speedup_vs_eager", "{:.2f}"), ("x best peer", "speedup_vs_best_peer", "{:.2f}"),
    ("setup s", "setup_s", "{:.1f}"),
)
SHORT = ("model", "size", "batch", "dtype", "backend", "median ms", "p90 ms", "FPS",
         "x eager", "x best peer", "max err")


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if fmt == "ms":
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return fmt.format(v)


def _cells(rows, columns):
    out, notes = [], []
    for r in rows:
        if r.get("error"):
            notes.append(r["error"])
            cells = [_cell(r, k, f) for _, k, f in columns[:5]]
            cells += [f"error [{len(notes)}]"] + [""] * (len(columns) - 6)
        else:
            cells = [_cell(r, k, f) for _, k, f in columns]
        out.append(cells)
    return out, notes


def _pick(columns):
    return tuple(c for c in COLUMNS if c[0] in columns)


def text_table(rows: list[dict], columns=None) -> str:
    """Fixed-width columns; a failed backend shows `error [n]` and its reason below."""
    cols = _pick(columns) if columns else COLUMNS
    body, notes = _cells(rows, cols)
    head = [c[0] for c in cols]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    right = [c[1] not in ("model", "dtype", "backend") for c in cols]

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    lines = [line(head), line(["-" * w for w in widths]), *(line(b) for b in body)]
    lines += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def markdown_table(rows: list[dict], columns=SHORT) -> str:
    """A GitHub Markdown table of the rows (errors as their reason, shortened)."""
    cols = _pick(columns) if columns else COLUMNS
    lines = ["| " + " | ".join(c[0] for c in cols) + " |",
             "|" + "|".join("---" if c[1] in ("model", "dtype", "backend") else "---:" for c in cols) + "|"]
    for r in rows:
        if r.get("error"):
            reason = r["error"].replace("|", "/").splitlines()[0][:80]
            cells = [_cell(r, k, f) for _, k, f in cols[:5]] + [f"error: {reason}"]
            cells += [""] * (len(cols) - len(cells))
        else:
            cells = [_cell(r, k, f) for _, k, f in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict, path) -> Path:
    """Horizontal bars of median latency per backend, one panel per model configuration,
    with a p90 whisker; failed backends are left out (their reason is in the JSON)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[dict]] = {}
    for r in result["rows"]:
        if r.get("error") is None:
            groups.setdefault((r["model"], r["size"], r["batch"], r["dtype"]), []).append(r)
    n = max(len(groups), 1)
    height = sum(max(len(v), 1) for v in groups.values()) * 0.32 + 0.9 * n
    fig, axes = plt.subplots(n, 1, figsize=(8, max(height, 2.5)), squeeze=False)
    for ax, ((model, size, batch, dtype), rs) in zip(axes[:, 0], groups.items()):
        labels = [r["backend"] for r in rs]
        med = [r["median_ms"] for r in rs]
        err = [max(r["p90_ms"] - r["median_ms"], 0.0) for r in rs]
        colors = ["#4c72b0" if r["kind"] == "peer" else "#dd8452" for r in rs]
        ax.barh(labels, med, xerr=[[0] * len(err), err], color=colors, capsize=3)
        ax.invert_yaxis()
        ax.set_title(f"{model} {size}x{size} batch {batch} {dtype} ({result['device']})", fontsize=9)
        ax.set_xlabel("latency, ms (bar: median, whisker: p90; blue: peers, orange: effseg)",
                      fontsize=8)
        ax.tick_params(labelsize=8)
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no successful rows", ha="center", va="center")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# effseg.X wraps peer X: "never slower than what it wraps" is checked against that row.
WRAPS = {"effseg.eager": "eager", "effseg.inductor": "torch.compile", "effseg.onnxruntime": "onnxruntime",
         "effseg.openvino": "openvino", "effseg.tensorrt": "onnxruntime"}
# Below this ratio a loss is called one; under it, medians of a few calls on a shared CPU
# differ by that much between identical runs.
LOSS_MARGIN = 0.97


def _why(row: dict, peer: dict) -> str:
    """What the row's own record says about a loss."""
    tune = (row.get("info") or {}).get("autotune") or {}
    choice, source = tune.get("choice"), tune.get("source")
    spread = peer.get("p90_ms") is not None and row["median_ms"] <= peer["p90_ms"]
    if choice == "plain":
        why = (f"autotune ({source}) chose the plain model here, so both rows run the same graph: the gap "
               "is effseg's call path (input/output binding, checks) or timing, not its passes")
    elif choice and choice != "effseg":
        why = f"autotune ({source}) chose '{choice}'"
    elif source == "off":
        why = "autotune is off (EFFSEG_AUTOTUNE=0 or autotune=False): effseg's passes were applied unmeasured"
    elif source in ("measured", "cache"):
        times = tune.get("times_ms") or {}
        why = (f"autotune ({source}) measured effseg's passes fastest at compile time"
               + (f" ({', '.join(f'{k} {v:.3g} ms' for k, v in times.items())})" if times else "")
               + ", yet this row timed slower")
    else:
        why = "no autotune decision recorded for this row"
    if spread:
        why += f"; its median is inside {peer['backend']}'s p90 ({peer['p90_ms']:.3g} ms): rerun with more --iters"
    return why


def losses(rows: list[dict]) -> list[str]:
    """One line per effseg row slower than the peer it wraps, and for effseg's fastest row
    per model/size/batch/dtype one if it is slower than the best peer, with the reason its
    record gives: the table says when effseg loses, not only when it wins."""
    ok = [r for r in rows if not r.get("error") and r.get("median_ms")]
    out = []
    for r in ok:
        if r["backend"] not in WRAPS:
            continue
        same = [o for o in ok if (o["model"], o["size"], o["batch"], o["dtype"]) ==
                (r["model"], r["size"], r["batch"], r["dtype"])]
        wrapped = next((o for o in same if o["backend"] == WRAPS[r["backend"]]), None)
        best = min((o for o in same if o["backend"] not in WRAPS), key=lambda o: o["median_ms"], default=None)
        ours = min((o for o in same if o["backend"] in WRAPS), key=lambda o: o["median_ms"])
        if ours is not r:
            best = None  # the best-peer goal is effseg's fastest row's: slower ones are judged by what they wrap
        seen = set()
        for peer, what in ((wrapped, "the peer it wraps"), (best, "the best peer")):
            if peer is None or id(peer) in seen or peer["median_ms"] / r["median_ms"] >= LOSS_MARGIN:
                continue
            seen.add(id(peer))
            out.append(f"{r['model']} {r['size']} {r['dtype']}: {r['backend']} is "
                       f"{r['median_ms'] / peer['median_ms']:.2f}x slower than {peer['backend']} ({what}; "
                       f"{r['median_ms']:.3g} vs {peer['median_ms']:.3g} ms): {_why(r, peer)}")
    return out
