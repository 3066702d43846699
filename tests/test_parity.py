"""effseg._parity: the one comparison compile, export and bench use."""
import math

import pytest
import torch

import effseg
from effseg._parity import ARGMAX_AGREEMENT, FP32_TOL, ParityError, check_parity, parity_figures


def _logits():
    want = torch.zeros(1, 3, 2, 2)
    want[:, 0] = 1.0  # class 0 wins everywhere
    return want


def test_figures_measure_error_scale_and_agreement():
    want = _logits()
    got = want.clone()
    got[0, 2, 0, 0] = 2.0  # one pixel of four now says class 2
    p = parity_figures(want, got.numpy())
    assert p["max_abs_err"] == pytest.approx(2.0) and p["rel_err"] == pytest.approx(2.0)
    assert p["argmax_agreement"] == pytest.approx(0.75) and p["finite"] and not p["ok"]
    same = parity_figures(want, want)
    assert same["max_abs_err"] == 0.0 and same["ok"] and same["tolerance"] == FP32_TOL


def test_fp32_tolerance_is_relative_to_the_output_scale():
    want = _logits() * 1000
    assert parity_figures(want, want + 0.9 * FP32_TOL * 1000)["ok"]
    assert not parity_figures(want, want + 1.1 * FP32_TOL * 1000)["ok"]


def test_non_finite_output_fails_with_infinite_error():
    want = _logits()
    bad = want.clone()
    bad[0, 0, 0, 0] = float("nan")
    p = parity_figures(want, bad)
    assert p["finite"] is False and math.isinf(p["max_abs_err"]) and not p["ok"]
    with pytest.raises(ParityError, match="non-finite"):
        check_parity(want, bad)


def test_reduced_precision_needs_argmax_agreement():
    want = torch.randn(1, 4, 20, 20, generator=torch.Generator().manual_seed(0))
    assert parity_figures(want, want.half(), torch.float16)["ok"]
    flipped = want.clone()
    flipped[0, :, 0, :10] = -flipped[0, :, 0, :10]  # 10 of 400 pixels change class
    p = parity_figures(want, flipped, torch.float16)
    assert p["argmax_agreement"] < ARGMAX_AGREEMENT and not p["ok"]


def test_label_outputs_compare_with_argmax():
    want = torch.randn(2, 5, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = want.argmax(1)
    assert parity_figures(want, labels, labels=True)["argmax_agreement"] == 1.0
    wrong = labels.clone()
    wrong[0, 0, :] = (wrong[0, 0, :] + 1) % 5
    p = parity_figures(want, wrong, labels=True)
    assert p["argmax_agreement"] == pytest.approx(1 - 8 / 128) and not p["ok"]


def test_structure_mismatch_is_an_error():
    want = _logits()
    with pytest.raises(ValueError, match="shape"):
        parity_figures(want, want[:, :2])
    with pytest.raises(ValueError, match="2 outputs, expected 1"):
        parity_figures(want, (want, want))
    with pytest.raises(ParityError, match="shape") as info:
        check_parity(want, want[:, :2], what="x")
    assert info.value.figures["ok"] is False


def test_one_public_parity():
    """compile re-exports the same function and error; export's ONNX check is another name."""
    import importlib

    compile_pkg = importlib.import_module("effseg.compile")  # effseg.compile is the function
    export = importlib.import_module("effseg.export")

    assert compile_pkg.check_parity is check_parity and effseg.ParityError is ParityError
    assert not hasattr(export, "check_parity") and callable(export.check_onnx_parity)
