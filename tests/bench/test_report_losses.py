"""effseg bench's loss lines: every effseg row slower than the peer it wraps, or than the
best peer, is named with the reason its autotune record gives."""
from effseg.bench.report_table import losses


def _row(backend, ms, p90=None, autotune=None, **kw):
    return {"model": "m", "size": 128, "batch": 1, "dtype": "fp32", "backend": backend, "median_ms": ms,
            "p90_ms": p90 if p90 is not None else ms * 1.05, "error": None,
            "info": {"autotune": autotune} if autotune is not None else None, **kw}


def test_no_line_when_effseg_wins_or_ties():
    # effseg.eager is slower than ORT, but it beats what it wraps, and effseg's best row
    # (effseg.onnxruntime) ties the best peer
    rows = [_row("eager", 10.0), _row("onnxruntime", 4.0), _row("effseg.eager", 9.0),
            _row("effseg.onnxruntime", 3.99)]
    assert losses(rows) == []
    rows[-1]["median_ms"] = 5.0  # now effseg's best row loses to both ORT and... only ORT is named once
    (line,) = losses(rows)
    assert line.startswith("m 128 fp32: effseg.onnxruntime is 1.25x slower than onnxruntime (the peer it wraps")


def test_a_loss_to_the_wrapped_peer_names_ratio_and_reason():
    rows = [_row("eager", 10.0), _row("onnxruntime", 3.4, p90=3.5),
            _row("effseg.onnxruntime", 8.0, autotune={"choice": "effseg", "source": "off"})]
    (line,) = losses(rows)
    assert "effseg.onnxruntime is 2.35x slower than onnxruntime" in line
    assert "the peer it wraps" in line and "autotune is off" in line
    assert "p90" not in line  # 8.0 ms is far outside the peer's spread


def test_plain_choice_and_spread_are_explained():
    rows = [_row("onnxruntime", 3.0, p90=3.4),
            _row("effseg.onnxruntime", 3.3, autotune={"choice": "plain", "source": "cache"})]
    (line,) = losses(rows)
    assert "same graph" in line and "not its passes" in line and "inside onnxruntime's p90" in line


def test_best_peer_loss_is_reported_besides_the_wrapped_one():
    rows = [_row("eager", 16.1), _row("onnxruntime", 3.4),
            _row("effseg.eager", 12.0, autotune={"choice": "effseg", "source": "measured",
                                                 "times_ms": {"effseg": 11.0, "plain": 15.0}})]
    (line,) = losses(rows)  # beats eager, loses to ORT
    assert "than onnxruntime (the best peer" in line and "measured effseg's passes fastest" in line
    assert "plain 15 ms" in line


def test_errors_and_other_groups_are_ignored():
    rows = [_row("eager", 1.0), dict(_row("effseg.eager", 5.0), error="boom"),
            dict(_row("effseg.onnxruntime", 5.0), size=256)]
    assert losses(rows) == []
