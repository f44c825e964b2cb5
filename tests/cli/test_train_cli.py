"""`segstudio train` / `segstudio eval` as a user (or the app) runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from camvid_fixtures import TinyRun, child_env, parse_events, segstudio_cmd, tiny_trained_run  # noqa: E402

from segstudio.cli.main import build_parser, main  # noqa: E402

FIGURES = ("miou", "mean_dice", "pixel_accuracy", "mean_class_accuracy")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_trained_run(tmp_path_factory)


@pytest.mark.slow
def test_eval_reproduces_the_trainers_best_validation_figures(tiny: TinyRun, capsys: pytest.CaptureFixture[str]) -> None:
    assert tiny.returncode == 0, tiny.stderr[-3000:]
    best = [e for e in tiny.events if e["event"] == "run_finished"][0]["best"]
    code = main(["eval", str(tiny.project), "--model", "tiny", "--json", "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "val" and report["images"] == 8
    for key in FIGURES:
        assert 0.0 <= report[key] <= 1.0
        assert report[key] == pytest.approx(best[key], abs=1e-6), key
    assert set(report["per_class"]) == set(best["per_class"])
    for name, values in report["per_class"].items():
        for key in ("iou", "dice"):
            if best["per_class"][name][key] is None:
                assert values[key] is None
            else:
                assert values[key] == pytest.approx(best["per_class"][name][key], abs=1e-6)


def test_eval_table_and_missing_split(tiny: TinyRun, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(tiny.project / "models" / "tiny")
    assert main(["eval", str(tiny.project), "--model", model, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "Pedestrian" in out
    assert main(["eval", str(tiny.project), "--model", "tiny", "--split", "test", "--device", "cpu"]) == 2
    assert "no labelled images in the test split" in capsys.readouterr().err
    assert main(["eval", str(tiny.project), "--model", "nope", "--device", "cpu"]) == 2


def test_resume_keeps_the_runs_settings_but_takes_new_epochs(tiny: TinyRun) -> None:
    from segstudio.cli.engine_cmds import _train_config

    args = build_parser().parse_args(["train", str(tiny.project), "--resume", "tiny", "--epochs", "9",
                                      "--lr", "0.5"])
    config = _train_config(args)
    assert config.epochs == 9 and config.lr == pytest.approx(2e-3)  # lr is the run's own
    assert config.encoder == "resnet18" and Path(str(config.resume)) == tiny.project / "runs" / "tiny"
    with pytest.raises(Exception, match="no resumable run"):
        _train_config(build_parser().parse_args(["train", str(tiny.project), "--resume", "missing"]))


def test_bare_train_options_leave_every_choice_to_the_defaults(tmp_path: Path) -> None:
    from segstudio.cli.engine_cmds import _train_config
    from segstudio.engine.config import TrainConfig

    config = _train_config(build_parser().parse_args(["train", str(tmp_path)]))
    assert config == TrainConfig()
    config = _train_config(build_parser().parse_args(["train", str(tmp_path), "--pretrained", "none"]))
    assert config.pretrained is None


def test_train_error_is_one_json_event_and_exit_2(tmp_path: Path) -> None:
    from segstudio.core.classes import ClassTable
    from segstudio.core.project import Project

    Project.create(tmp_path / "empty", ClassTable.from_names(["bg", "fg"]))
    proc = subprocess.run(segstudio_cmd("train", str(tmp_path / "empty"), "--events", "jsonl", "--device", "cpu"),
                          capture_output=True, text=True, env=child_env(), timeout=300)
    assert proc.returncode == 2
    events = parse_events(proc.stdout)
    assert [e["event"] for e in events] == ["error"]
    assert "no labelled training images" in events[0]["message"]
    assert "no labelled training images" in proc.stderr


@pytest.mark.slow
def test_console_progress_in_a_log_has_no_carriage_returns(tiny: TinyRun, tmp_path: Path) -> None:
    """`segstudio train` with stderr going to a file (a batch job's log): plain lines only,
    one line per epoch, the summary at the end. A copy of the shared `tiny` project is resumed
    for one more epoch (the shared run stays as other tests expect it)."""
    import shutil

    project = tmp_path / "copy"
    shutil.copytree(tiny.project, project)
    proc = subprocess.run(segstudio_cmd("train", str(project), "--resume", "tiny", "--epochs", "4",
                                        "--device", "cpu", "--workers", "0"),
                          capture_output=True, text=True, env=child_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith("epoch 4/4: train loss") for line in lines)
    assert any(line.startswith("finished (") for line in lines) and lines[-1].startswith("model: ")
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == len(set(warnings))  # each said once
