"""Hypothesis: for any shapes/forms/flags the C++ and chunked scans agree with the reference."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_cases import FLAG_NAMES, assert_close, call, make_inputs

from effseg.ops import selective_scan, selective_scan_ref


@st.composite
def scan_problem(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    dm = groups * draw(st.integers(1, 3))
    forms = st.sampled_from(["const", "var", groups])
    return dict(
        bt=draw(st.integers(1, 3)), dm=dm, length=draw(st.integers(1, 90)),
        n=draw(st.integers(1, 17)), b_form=draw(forms), c_form=draw(forms),
        flags=tuple(f for f in FLAG_NAMES if draw(st.booleans())),
        seed=draw(st.integers(0, 10_000)),
    )


@pytest.mark.parametrize("backend", ["cpp", "chunked"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problem=scan_problem())
def test_any_problem_matches_ref(backend, problem, require_backend):
    require_backend(backend)
    kw = make_inputs(**problem)
    y_ref, h_ref = call(selective_scan_ref, kw)
    y, h = call(selective_scan, kw, backend=backend)
    assert_close(y, y_ref, 1e-4, f"{backend} {problem}")
    assert_close(h, h_ref, 1e-4, f"{backend} last state {problem}")
