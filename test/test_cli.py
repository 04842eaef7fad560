"""The `aaron-ros` command: the installed entry point, the zoo listing and the main job."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aaron_ros.bench.zoo import ZooConfig, load_zoo_config, run_zoo
from aaron_ros.cli import build_parser, main
from aaron_ros.common.paths import find_config
from aaron_ros.models import model_names

ROOT = Path(__file__).resolve().parents[1]


def test_installed_entry_point_runs():
    exe = shutil.which("aaron-ros", path=str(Path(sys.executable).parent)) or shutil.which("aaron-ros")
    assert exe, "aaron-ros is not installed next to this interpreter"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for sub in ("models", "zoo"):
        assert sub in out.stdout


def test_models_lists_every_zoo_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in model_names():
        assert name in out
    assert "3x299x299" in out  # Inception's input size


def test_models_bench_times_a_small_model(capsys):
    assert main(["models", "--bench", "--model", "mobilenet_v3_small", "--frames", "2",
                 "--warmup", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("mobilenet_v3_small") and "/" in line]
    assert row, out
    assert "1 thread p50" in out


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["models", "--model", "alexnet"]) == 2
    assert "alexnet" in capsys.readouterr().err


@pytest.mark.parametrize("target", [["--workload", "f1tenth"], ["--bag", "nowhere_bag", "--config", "f1tenth"]])
def test_a_kernel_bag_folder_that_is_not_there_is_said_before_any_bench_runs(tmp_path, capsys, target):
    # Named, so meant: a missing folder is not a silent run on eager versions.
    assert main(["bench", *target, "--kernel-bags", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "--kernel-bags" in (err := capsys.readouterr().err) and "no such folder" in err, err
    assert not (tmp_path / "o").exists()


def test_zoo_runs_models_together_and_reports(tmp_path):
    cfg = ZooConfig(models=["mobilenet_v3_small", "seg_net"], lanes="cpu", duration_s=1.5,
                    isolation_frames=2, warmup=0)
    report = run_zoo(cfg, progress=False)
    assert [r.model for r in report.results] == cfg.models
    for r in report.results:
        assert r.failed is None
        assert r.alone.n == 2 and r.together.n >= 1
        assert r.together.p50_ms > 0 and r.slowdown > 0


def test_zoo_cli_writes_report(tmp_path, capsys):
    cfg = tmp_path / "zoo.yaml"
    cfg.write_text("models: [shufflenet_v2, mobilenet_v3_small]\nisolation_frames: 1\nwarmup: 0\n")
    assert main(["zoo", "--config", str(cfg), "--duration", "1", "--lanes", "cpu",
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "slowdown" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "zoo.json").read_text())
    assert [m["model"] for m in data["models"]] == ["shufflenet_v2", "mobilenet_v3_small"]
    assert data["machine"]["cores"] == os.cpu_count()


@pytest.mark.parametrize("text, key", [
    ("models: [resnet18]\nspeed: 3\n", "speed"),
    ("models: [alexnet]\n", "alexnet"),
    ("models: [resnet18]\nthreads: 0\n", "threads"),
    ("models: [resnet18]\nduration_s: -1\n", "duration_s"),
    ("models: [resnet18]\nlanes: tpu\n", "tpu"),
    ("models: resnet18\n", "models must be a list"),
    ("threads: two\n", "threads must be an integer"),
    ("duration_s: fast\n", "duration_s must be a number"),
    ("- resnet18\n", "a mapping"),
])
def test_bad_zoo_config_names_the_problem(tmp_path, capsys, text, key):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ValueError, match=key):
        load_zoo_config(cfg)
    assert main(["zoo", "--config", str(cfg), "--no-progress"]) == 2
    assert key in capsys.readouterr().err


def test_default_config_is_found_and_valid():
    cfg = load_zoo_config(find_config("zoo.yaml"))
    assert set(cfg.models) == set(model_names())


def test_a_zoo_file_without_models_runs_every_zoo_model(tmp_path):
    """The README's default for `models`: a file that leaves it out gets all of them, not a TypeError."""
    cfg = tmp_path / "zoo.yaml"
    cfg.write_text("duration_s: 2.0\n")
    assert load_zoo_config(cfg).models == model_names()


def test_kernel_bags_are_told_apart_from_rosbags_and_old_names_still_work(tmp_path, capsys, monkeypatch):
    from aaron_ros.cli import build_parser
    from aaron_ros.common.paths import KERNEL_BAG_DIR, kernel_bag_root

    args = build_parser().parse_args(["bench", "--bag", "rec", "--config", "f1tenth", "--kernel-bags", "kb",
                                      "--out", "o"])
    assert (args.bag, args.kernel_bags) == ("rec", "kb")
    assert "deprecated" not in capsys.readouterr().err
    args = build_parser().parse_args(["bench", "--workload", "f1tenth", "--bags", "old", "--out", "o"])
    assert args.kernel_bags == "old"
    err = capsys.readouterr().err
    assert "'--bags' is deprecated" in err and "use '--kernel-bags'" in err
    # `bag show` still reaches the kernel-bag reader, and says what it is called now.
    missing = tmp_path / "nothing"
    assert main(["bag", "show", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "'aaron-ros bag show' is deprecated" in err and "kernel-bag show" in err
    assert main(["kernel-bag", "show", str(missing)]) == 2
    assert "deprecated" not in capsys.readouterr().err
    # The old default folder is read, with a warning, only while the new one does not exist.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bags").mkdir()
    assert kernel_bag_root() == Path("bags")
    (tmp_path / KERNEL_BAG_DIR).mkdir()
    assert kernel_bag_root() == Path(KERNEL_BAG_DIR)


def _commands(parser: argparse.ArgumentParser, name: str = "aaron-ros"):
    """(name, parser) for the command and every subcommand under it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _commands(p, f"{name} {sub}")


def test_every_subcommand_and_flag_says_what_it_is_and_its_default():
    for name, parser in _commands(build_parser()):
        assert parser.description, f"{name} has no description"
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help text"
            if action.default not in (None, False):
                # Shown in the help, by the help's own words or the formatter's "(default X)".
                assert "default" in " ".join(parser._get_formatter()._expand_help(action).split()), \
                    f"{name} {action.option_strings[0]}: its default {action.default!r} is not shown"
        assert name in text or parser.prog in text


def test_the_readme_shows_only_flags_that_exist_with_the_parsers_defaults():
    readme = (ROOT / "README.md").read_text()
    commands = dict(_commands(build_parser()))
    shown = 0
    for line in readme.splitlines():
        m = re.search(r"aaron-ros ((?:[a-z][a-z-]*)(?: show)?)\b(.*)", line)
        if not m or m[1].split()[0] not in {n.split()[1] for n in commands if " " in n}:
            continue
        parser = commands[f"aaron-ros {m[1]}"]
        flags = {f for a in parser._actions for f in a.option_strings}
        rest = m[2].split("#")[0].split("--ros-args")[0].split("`")[0]  # ROS arguments are rcl's
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest):
            assert flag in flags, f"README line {line.strip()!r}: aaron-ros {m[1]} has no {flag}"
            shown += 1
    assert shown > 20
    # A default the README quotes beside a flag is the one --help gives.
    help_texts = {f: " ".join(p._get_formatter()._expand_help(a).split()) for p in commands.values()
                  for a in p._actions if a.help for f in a.option_strings}
    quoted = re.findall(r"`(--[a-z-]+)[^`]*` [^(]{0,40}\(default ([0-9.]+)", readme)
    assert quoted
    for flag, value in quoted:
        said = re.search(r"default:? ([0-9.]+)", help_texts[flag])
        assert said and float(said[1]) == float(value), f"README: {flag} default {value}; --help: {help_texts[flag]}"


def test_compile_says_the_compilers_own_stage_size():
    """The help's default for --min-stage-ms is the compiler's (the CLI spells it out rather than
    import the compiler, which brings torch into every command)."""
    from aaron_ros.kernels.compile import MIN_STAGE_MS
    compile_parser = dict(_commands(build_parser()))["aaron-ros compile"]
    action = next(a for a in compile_parser._actions if "--min-stage-ms" in a.option_strings)
    assert float(re.search(r"default ([0-9.]+)", action.help)[1]) == MIN_STAGE_MS
