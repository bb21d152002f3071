"""Smoke run of benchmarks.latency_table: a 2-stage toy bundle written, timed twice by its own script, predicted."""


def test_quick_run_states_the_predictor_error_with_its_environment(capsys):
    from benchmarks.latency_table import main

    figures = main(["--quick"])
    out = capsys.readouterr().out
    assert "----- markdown for BENCHMARKS.md -----" in out and "| table + correction (1 held-out architectures) |" in out
    for field in ("Command: `python -m benchmarks.latency_table --quick`", "Device: ", "threads 1", "Date: "):
        assert field in out
    assert 0 <= figures["within_10"] <= 1 and figures["bundle_mb"] > 0
