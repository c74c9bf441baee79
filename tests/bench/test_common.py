"""The benchmark harness: interleaving, calibration, per-round ratios, the JSON's schema."""
import json
import math
import multiprocessing
import subprocess
import sys
import time

import pytest

from bench import common
from bench.common import Method, Stats, measure, ratio, report, speedup


def _burn(seconds: float) -> None:
    """Use ``seconds`` of this process's own CPU time."""
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        pass


def test_measure_interleaves_rounds_and_calibrates():
    log = []
    methods = [Method(n, (lambda n=n: log.append(n)), items_per_call=4) for n in "abc"]
    res = measure(methods, rounds=3, min_seconds=0.002)
    assert list(res) == ["a", "b", "c"]
    for s in res.values():
        assert len(s.wall) == len(s.cpu) == len(s.round_seconds) == 3
        assert s.calls_per_round >= 1 and s.items_per_call == 4
        assert all(c >= s.calls_per_round for c in s.calls)
        assert all(r >= 0.002 for r in s.round_seconds)       # topped up until min_seconds
    # after each method's warm-up + calibration, the rounds run one block per method,
    # rotating the starting method: abc, bca, cab
    timed = log[len(log) - sum(sum(res[n].calls) for n in "abc"):]
    blocks = [timed[0]]
    for x in timed[1:]:
        if x != blocks[-1][-1]:
            blocks.append(x)
        else:
            blocks[-1] += x
    assert [b[0] for b in blocks] == list("abcbcacab")
    assert [len(b) for b in blocks] == [res[b[0]].calls[i // 3] for i, b in enumerate(blocks)]


def test_measure_refuses_fewer_than_three_rounds_and_duplicate_names():
    with pytest.raises(ValueError, match=">= 3"):
        measure([Method("a", lambda: None)], rounds=2)
    with pytest.raises(ValueError, match="unique"):
        measure([Method("a", lambda: None), Method("a", lambda: None)], rounds=3)


def test_setup_warmup_and_teardown_run_outside_the_rounds():
    calls = []
    m = Method("m", lambda: calls.append("run"), setup=lambda: calls.append("setup"),
               teardown=lambda: calls.append("teardown"), warmup=2)
    res = measure([m], rounds=3, min_seconds=0.001)
    assert calls[0] == "setup" and calls[1:3] == ["run", "run"] and calls[-1] == "teardown"
    assert calls.count("setup") == calls.count("teardown") == 1
    assert calls.count("run") >= 2 + sum(res["m"].calls)


def _stats(name, wall, cpu=None, group=1):
    return Stats(name, 1, 1, wall=list(wall), cpu=list(cpu or wall),
                 round_seconds=[2.0] * len(wall), calls=[1] * len(wall), group=group)


def test_ratio_is_computed_per_round_then_summarised():
    res = {"a": _stats("a", [2.0, 3.0, 8.0], cpu=[1.0, 1.0, 1.0]),
           "b": _stats("b", [1.0, 2.0, 2.0], cpu=[2.0, 2.0, 2.0])}
    r = ratio(res, "a", "b", target=1.8)
    assert r["per_round"] == [2.0, 1.5, 4.0]           # not median(a) / median(b) = 1.5
    assert (r["median"], r["min"], r["max"]) == (2.0, 1.5, 4.0)
    assert r["spread"] == pytest.approx((4.0 - 1.5) / 2.0)
    assert r["stable"] is False and r["meets_target"] is False
    s = speedup(res, "a", "b", target=0.4)
    assert s["per_round"] == [0.5, 2 / 3, 0.25] and s["meets_target"] is True
    c = ratio(res, "a", "b", cpu=True)
    assert c["per_round"] == [0.5, 0.5, 0.5] and c["stable"] is True and c["clock"] == "cpu"


def test_ratio_refuses_methods_from_different_measure_calls():
    res = {"a": _stats("a", [1, 1, 1], group=1), "b": _stats("b", [1, 1, 1], group=2)}
    with pytest.raises(ValueError, match="different measure"):
        ratio(res, "a", "b")
    with pytest.raises(KeyError, match="no method 'c'"):
        ratio(res, "a", "c")


def test_report_schema_and_stability():
    res = {"a": _stats("a", [2.0, 2.1, 2.2]), "b": _stats("b", [1.0, 1.0, 1.0]),
           "c": _stats("c", [1.0, 2.0, 4.0])}
    out = report(res, {"a_vs_b": ratio(res, "a", "b")},
                 secondary={"c_vs_b": ratio(res, "c", "b")}, extra={"size": 3})
    assert out["a_vs_b"] == pytest.approx(2.1)
    assert out["stable"] is True                        # c's spread is secondary
    assert out["headline"] == ["a_vs_b"] and set(out["ratios"]) == {"a_vs_b", "c_vs_b"}
    assert out["ratios"]["c_vs_b"]["stable"] is False
    assert out["methods"]["b"]["wall_s_per_item"] == {"median": 1.0, "min": 1.0, "max": 1.0,
                                                     "spread": 0.0}
    assert out["rounds"] == 3 and out["size"] == 3
    unstable = report(res, {"c_vs_b": ratio(res, "c", "b")})
    assert unstable["stable"] is False
    with pytest.raises(ValueError, match="collides"):
        report(res, {"a_vs_b": ratio(res, "a", "b")}, extra={"stable": True})


def _child_burn():
    _burn(0.3)


def test_cpu_seconds_counts_reaped_and_live_child_processes():
    ctx = multiprocessing.get_context("fork")
    c0 = common.cpu_seconds()
    p = ctx.Process(target=_child_burn)
    p.start()
    p.join()                                             # reaped: RUSAGE_CHILDREN
    assert common.cpu_seconds() - c0 >= 0.3
    # a live worker (alive at the start and the end) is counted through psutil
    q = ctx.Queue()
    w = ctx.Process(target=_live_worker, args=(q,))
    w.start()
    assert q.get(timeout=30) == "ready"
    c1 = common.cpu_seconds()
    q2_done = q.get(timeout=30)
    assert q2_done == "burnt"
    c2 = common.cpu_seconds()
    w.join()
    if common._psutil() is not None:
        assert c2 - c1 >= 0.25                           # /proc ticks: 10 ms resolution
    assert common.cpu_seconds() - c1 >= 0.3               # reaped now


def _live_worker(q):
    q.put("ready")
    time.sleep(0.2)
    _burn(0.3)
    q.put("burnt")
    time.sleep(0.5)


@pytest.mark.timeout(120)
def test_docstring_example_runs_and_emits_one_json_line(tmp_path):
    src = common.__doc__.split("Complete example")[1].split("::", 1)[1]
    src = src.split("``Method(name")[0]
    code = "\n".join(line[4:] for line in src.splitlines()).replace('\\"', '"')
    pkg = tmp_path / "benchx"
    pkg.mkdir()
    (pkg / "relu.py").write_text(code)
    driver = ("import sys; sys.path.insert(0, %r); from benchx.relu import main; "
              "from bench.common import emit; "
              "emit(main(['--quick', '--size', '4096', '--min-seconds', '0.01']), 'relu')"
              % str(tmp_path))
    out = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                         timeout=110)
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last["benchmark"] == "relu" and last["rounds"] == 3 and last["min_seconds"] == 0.01
    assert last["min_round_seconds"] >= 0.01
    assert math.isfinite(last["clamp_vs_relu"]) and last["clamp_vs_relu"] > 0
    assert {"torch", "threads", "device", "cpu_model", "load_avg"} <= set(last["env"])
    assert "clamp_vs_relu" in out.stderr      # the table


_MALLOC_PROBE = """
import ctypes, sys
from bench.common import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.mallinfo2.restype = ctypes.c_void_p, Info
if sys.argv[1] == "keep" and not keep_freed_memory():
    sys.exit(3)
block = libc.malloc(16 << 20)
print("mmapped" if libc.mallinfo2().hblkhd >= 16 << 20 else "heap")
"""


def test_keep_freed_memory_serves_large_blocks_from_the_heap():
    """A 16 MiB block is mmapped (fresh pages, faults on every call) by default and served
    from the heap once the benchmark pins glibc's thresholds."""
    import ctypes

    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2) to observe where malloc serves blocks")
    out = {mode: subprocess.run([sys.executable, "-c", _MALLOC_PROBE, mode], capture_output=True,
                                text=True, timeout=60) for mode in ("default", "keep")}
    assert {m: (r.returncode, r.stdout.strip()) for m, r in out.items()} == {
        "default": (0, "mmapped"), "keep": (0, "heap")}, {m: r.stderr for m, r in out.items()}
