"""A missing effseg._C is announced once, loudly, with the slow path and the fix."""
import json
import subprocess
import sys

PROBE = """
import json, sys, warnings
sys.modules["effseg._C"] = None   # what an unbuilt source tree looks like to the import
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import effseg
    from effseg import _native
    import effseg.ops
print(json.dumps({"available": _native.available(),
                  "messages": [str(w.message) for w in caught if "C++ kernels" in str(w.message)]}))
"""


def test_missing_native_module_warns_once_naming_the_slow_path_and_the_fix():
    out = subprocess.run([sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["available"] is False and len(got["messages"]) == 1, got
    assert "100x slower" in got["messages"][0] and "pip install ." in got["messages"][0]
