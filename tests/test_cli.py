"""The ``lanet`` command line: describe, validate and error handling (no training)."""

import pytest

from lanet_core.cli import main


def test_describe_prints_components_and_map_size(capsys, tmp_path):
    assert main(["describe", "configs/busi_lanet_r18.yaml", "--set", "data.image_size=128", "--set", "model.use_sam=false"]) == 0
    out = capsys.readouterr().out
    for text in ("feature extractor", "LA-Net", "classifier head", "total", "lesion map: (1, 1, 4, 4)", "512 @ /32"):
        assert text in out, text


def test_describe_baseline(capsys):
    assert main(["describe", "configs/busi_vanilla_r18.yaml", "--set", "data.image_size=64"]) == 0
    assert "class logits: (1, 2)" in capsys.readouterr().out


def test_bad_config_key_is_a_clear_error(capsys):
    assert main(["describe", "configs/busi_lanet_r18.yaml", "--set", "model.nope=1"]) == 2
    assert "unknown config key 'model.nope'" in capsys.readouterr().err


def test_missing_config_file(capsys):
    assert main(["train", "does_not_exist.yaml"]) == 2
    assert "not found" in capsys.readouterr().err


def test_validate_exit_codes(phantom_dir, tmp_path, capsys):
    assert main(["validate", str(phantom_dir / "manifest.csv"), "--data-root", str(phantom_dir)]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text((phantom_dir / "manifest.csv").read_text().replace(",benign,", ",maybe,", 1))
    assert main(["validate", str(bad), "--data-root", str(phantom_dir)]) == 1
    assert "maybe" in capsys.readouterr().out


def test_every_subcommand_and_option_explains_itself():
    import argparse

    from lanet_core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        assert p.epilog and "lanet" in p.epilog, f"{name}: no example"
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"lanet {name} {action.option_strings or action.dest}: no help"


def test_study_outside_a_checkout_says_it_needs_one(monkeypatch, tmp_path) -> None:
    """An installed wheel has no profiles: the error says the study needs a checkout (issue 14)."""
    import lanet_core.study.profiles as profiles
    from lanet_core.errors import ConfigError

    monkeypatch.setattr(profiles, "project_root", lambda: tmp_path)
    with pytest.raises(ConfigError, match="checkout of the lanet repository"):
        profiles.load_profile("cpu")


def test_help_text_is_plain_and_fits_120_columns(capsys, monkeypatch) -> None:
    """Issue 31 item 5: no doubled defaults, required options marked as such, no RST markup, at most 120 columns."""
    import re

    import pytest as _pytest

    from lanet_core.cli import build_parser, main

    monkeypatch.setenv("COLUMNS", "200")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        with _pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert max(len(line) for line in text.splitlines()) <= 120, name
        assert "(default: None)" not in text and not re.search(r"\(default: [^)]*\)\s+\(default:", text), name
        assert "``" not in text, name
    with _pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "(required)" in capsys.readouterr().out


def test_plan_prints_per_device_within_120_columns(capsys) -> None:
    """Issue 31 item 5: the plan says which device its hours are for, GPU apart from CPU, in 120 columns."""
    import pandas as pd

    from lanet_core.study.plan import print_plan

    plan = pd.DataFrame({"experiment": ["label_ratio"] * 2, "method": ["R18+LA-Net-fine with a long name"] * 2,
                         "seed": [0, 1], "fold": ["", ""], "ratio": [0.25, 0.25], "image_size": [256, 256],
                         "config_hash": ["abc", "def"], "state": ["finished", "to train"], "est_hours": [0.0, 1.5],
                         "rate_source": ["measured (runs)", "assumed (x)"], "gpu": ["cuda: NVIDIA H200"] * 2,
                         "est_gpu_hours": [0.0, 0.2], "gpu_rate_source": ["measured (runs)"] * 2})
    print_plan(plan)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "On cpu: estimated 1.5 cpu-hours" in out and "On cuda: NVIDIA H200: estimated 0.2 gpu-hours" in out
