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
