"""python -m resnet_np bench: a smoke test at a tiny batch (timings are for the benchmark,
never for tests)."""
import json

from resnet_np.bench import main


def test_bench_runs_and_writes_every_figure(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["--batch", "2", "--repeat", "1", "--no-torch", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3->16 32x32" in out and "64->64 8x8" in out and "Targets" in out
    report = json.loads(path.read_text())
    assert report["batch"] == 2 and len(report["convs"]) == 6
    assert {row["framework"] for row in report["convs"]} == {"numpy"}
    assert all(row["forward_ms"] > 0 and row["backward_gflops"] > 0 for row in report["convs"])
    assert report["resnet20"]["numpy"]["train_images_per_s"] > 0
    assert "torch" not in report["resnet20"]
