"""python -m resnet_np bench: a smoke test at a tiny batch (timings are for the benchmark,
never for tests), and the target verdicts on made-up figures."""
import json
import os

import pytest

from resnet_np.bench import TORCH_OPERATORS, bench_layers, main, torch_layer_profile
from resnet_np.bench_report import targets


def _bench(tmp_path, capsys, *flags):
    """(what it printed, the JSON report) of a tiny bench run without torch."""
    path = tmp_path / "bench.json"
    assert main(["--batch", "2", "--repeat", "1", "--no-torch", "--json", str(path),
                 *flags]) == 0
    return capsys.readouterr().out, json.loads(path.read_text())


def test_bench_runs_and_writes_every_figure(tmp_path, capsys):
    out, report = _bench(tmp_path, capsys, "--scaling-batch", "3")
    assert "3->16 32x32" in out and "64->64 8x8" in out and "Targets" in out
    assert "batch 2 ms/img" in out and "batch 3 ms/img" in out
    assert report["batch"] == 2 and len(report["convs"]) == 6
    assert {row["framework"] for row in report["convs"]} == {"numpy"}
    assert all(row["forward_ms"] > 0 and row["backward_gflops"] > 0 for row in report["convs"])
    numpy = report["resnet20"]["numpy"]
    assert numpy["train_images_per_s"] > 0 and numpy["infer_images_per_s"] > 0
    assert numpy["eval_images_per_s"] > 0
    assert numpy["peak_mb"] > 0 and numpy["infer_peak_mb"] > 0
    assert "torch" not in report["resnet20"]
    assert set(report["scaling"]) == {"2", "3"} and report["scaling"]["3"]["numpy"] > 0
    assert [t["target"].split(":")[0] for t in report["targets"]] == [
        "inference peak RSS <= half the training step's"]


def test_bench_layers_times_each_layer_kind_on_one_core(tmp_path, capsys):
    out, report = _bench(tmp_path, capsys, "--convs-only", "--layers")
    layers = report["layers"]
    if not hasattr(os, "sched_setaffinity"):                   # not Linux: said, not measured
        assert layers is None and "not measured" in out
        return
    assert "layer by layer" in out and "the whole step" in out and "torch" not in layers
    assert layers["images"] == max(1, 2 // (os.cpu_count() or 1))
    spent = {(r["layer"], r["pass"]): r["ms"] for r in layers["numpy"]["rows"]}
    assert set(TORCH_OPERATORS.values()) <= set(spent)         # every kind torch is timed in
    assert all(ms > 0 for ms in spent.values())
    assert sum(spent.values()) <= layers["numpy"]["step_ms"]  # the layers are inside the step


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="held on one core: Linux")
def test_bench_layers_reports_a_failed_process_with_its_error():
    with pytest.raises(RuntimeError, match="numpy process failed(.|\n)*non-empty batch"):
        bench_layers(0, 1, ["numpy"], rounds=1)               # zero images: Conv2d refuses


def test_torch_layer_profile_finds_every_operator():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                   # as bench --layers runs it
    try:
        step_ms, spent = torch_layer_profile(torch, 2, 1)
    finally:
        torch.set_num_threads(threads)
    assert set(spent) == set(TORCH_OPERATORS.values())
    assert all(ms > 0 for ms in spent.values()) and sum(spent.values()) <= step_ms


def _figures(numpy_ms, torch_ms, train, infer, peaks):
    rows = [{"shape": s, "framework": f, "forward_ms": ms, "backward_ms": ms}
            for s, n, t in zip(("a", "b"), numpy_ms, torch_ms)
            for f, ms in (("numpy", n), ("torch", t))]
    result = {f: {"train_images_per_s": tr, "infer_images_per_s": inf,
                  "eval_images_per_s": inf / 2, "peak_mb": p, "infer_peak_mb": ip}
              for f, tr, inf, (p, ip) in zip(("numpy", "torch"), train, infer, peaks)}
    return rows, result


def test_targets_are_judged_on_the_ratios():
    rows, result = _figures((2.0, 3.0), (1.0, 1.6), train=(65, 100), infer=(50, 100),
                            peaks=((500, 250), (460, 300)))
    found = dict(targets(rows, result, {32: {"numpy": 1.3}, 128: {"numpy": 1.0}}))
    verdicts = {text.split(":")[0]: met for text, met in found.items()}
    assert verdicts == {
        "ResNet-20 inference >= 0.6x torch images/s": False,            # 0.50x
        "ResNet-20 training >= 0.6x torch images/s": True,               # 0.65x
        "every ResNet-20 conv fw+bw <= 2x torch": True,                  # 2.00x and 1.88x
        "training peak RSS <= torch's + 10%": True,                      # 500 <= 506
        "inference peak RSS <= half the training step's": True,          # 250 <= 250
        "time per image at batch 32 within 1.3x of batch 128": True}     # 1.30x
    assert any("(stretch 0.7x not met)" in text for text in found)


def test_targets_fail_just_past_each_limit():
    rows, result = _figures((2.01, 1.0), (1.0, 1.0), train=(59, 100), infer=(61, 100),
                            peaks=((507, 254), (460, 300)))
    found = targets(rows, result, {32: {"numpy": 1.31}, 128: {"numpy": 1.0}})
    assert [met for _, met in found] == [True, False, False, False, False, False]


def test_scaling_batches_pair_32_with_128():
    from resnet_np.bench import _scaling_batches
    assert _scaling_batches(128, None) == [32, 128]
    assert _scaling_batches(32, None) == [32, 128]
    assert _scaling_batches(64, 8) == [8, 64]
    assert _scaling_batches(128, 0) == []
