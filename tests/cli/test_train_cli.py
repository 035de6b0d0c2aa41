import json
import subprocess
import sys

from typer.testing import CliRunner

from siamese.cli.app import app
from tests.conftest import write_identity_folder

runner = CliRunner(env={"COLUMNS": "250"})


def test_train_on_generated_images_makes_run_and_table(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            str(data),
            "--loss",
            "margin",
            "--preset",
            "digits",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--samples-per-epoch",
            "16",
            "--eval-pairs",
            "8",
            "--val-fraction",
            "0.25",
            "--test-fraction",
            "0.25",
            "--embedding-dim",
            "8",
            "--out",
            str(out),
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "test EER" in result.output and "validation threshold" in result.output and str(out) in result.output
    )
    assert (out / "checkpoints" / "best.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["optim"]["epochs"] == 2 and config["data"]["root"] == str(data)


def test_train_bad_option_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path), "--epochs", "-3"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["error: epochs must be > 0, got -3"]


def test_train_unknown_loss_lists_choices():
    result = runner.invoke(app, ["train", "--loss", "circle"])
    assert result.exit_code == 2
    assert all(name in result.output for name in ("margin", "supcon", "triplet", "arcface", "subcenter"))


def test_train_missing_path_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path / "missing"), "--epochs", "1"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: dataset folder not found: {tmp_path / 'missing'}"]
    assert "Traceback" not in result.output


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom siamese.cli.app import app\n"
        "r = CliRunner().invoke(app, ['train', '--help'])\nassert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_encoder_args_are_parsed_and_validated():
    from siamese.cli.train import parse_encoder_args

    assert parse_encoder_args(["width=16", "stem_stride=2", "x=0.5", "mode=fast"]) == {
        "width": 16,
        "stem_stride": 2,
        "x": 0.5,
        "mode": "fast",
    }
    assert parse_encoder_args(None) is None
    result = runner.invoke(app, ["train", "--encoder-arg", "nonsense"])
    assert result.exit_code == 1 and "KEY=VALUE" in result.stderr


def test_resume_rejects_other_training_options(tmp_path):
    result = runner.invoke(app, ["train", "--resume", str(tmp_path), "--epochs", "3"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --resume continues a run with its saved config; remove --epochs"


def test_resume_of_a_non_run_directory(tmp_path):
    result = runner.invoke(app, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 1 and "no config.json" in result.stderr


def test_train_warns_about_a_flag_the_loss_ignores(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    args = ["train", str(data), "--preset", "digits", "--loss", "margin", "--loss-arg", "temperature=0.3"]
    tiny = ["--epochs", "1", "--batch-size", "8", "--samples-per-epoch", "8", "--eval-pairs", "8"]
    result = runner.invoke(app, [*args, *tiny, "--embedding-dim", "8", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "--loss-arg temperature has no effect with --loss margin" in result.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["loss"]
    assert saved["options"]["temperature"] == 0.3
    result = runner.invoke(app, [*args, *tiny, "--forgery-classes", "--out", str(tmp_path / "run2")])
    assert result.exit_code == 0, result.output
    assert "--forgery-classes has no effect without --forgeries" in result.stderr
    assert json.loads((tmp_path / "run2" / "config.json").read_text())["data"]["forgery_classes"] is True


def test_train_arcface_on_tiny_images_writes_a_cosine_model(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    out = tmp_path / "run"
    args = ["train", str(data), "--preset", "digits", "--loss", "arcface", "--loss-arg", "scale=8"]
    args += ["--loss-arg", "margin=0.3"]
    tiny = ["--epochs", "1", "--batch-size", "8", "--m-per-class", "2", "--samples-per-epoch", "16"]
    tiny += ["--eval-pairs", "8", "--embedding-dim", "8", "--loss-arg", "lr_multiplier=5", "--out", str(out)]
    result = runner.invoke(app, [*args, *tiny, "--loss-arg", "temperature=0.2"])
    assert result.exit_code == 0, result.output
    assert "test EER" in result.output and "sampler mperclass" in result.output
    assert "--loss-arg temperature has no effect with --loss arcface" in result.stderr
    assert (out / "checkpoints" / "best.safetensors").is_file()
    meta = json.loads((out / "checkpoints" / "best.json").read_text())
    assert (meta["loss"], meta["distance"]) == ("arcface", "cosine")
    loss = json.loads((out / "config.json").read_text())["loss"]
    options = loss["options"]
    assert (loss["name"], options["scale"], options["margin"], options["lr_multiplier"]) == (
        "arcface",
        8.0,
        0.3,
        5.0,
    )
    assert isinstance(options["scale"], float)  # typed as the loss declares it, though given as "8"


def test_the_per_option_flags_of_earlier_versions_still_work_with_a_warning(tmp_path):
    from siamese.cli.train import command_config

    result = runner.invoke(app, ["train", str(tmp_path), "--loss", "margin", "--margin", "28.6"])
    assert result.exit_code == 1 and "--margin is deprecated: use --loss-arg margin=28.6" in result.stderr
    assert command_config  # the same path as --loss-arg: the deprecated flag became a loss option
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    out = tmp_path / "run"
    args = ["train", str(data), "--preset", "digits", "--loss", "arcface", "--scale", "8", "--margin", "0.3"]
    tiny = ["--epochs", "1", "--batch-size", "8", "--m-per-class", "2", "--samples-per-epoch", "16"]
    tiny += ["--eval-pairs", "8", "--embedding-dim", "8", "--loss-lr-multiplier", "5", "--out", str(out)]
    result = runner.invoke(app, [*args, *tiny, "--temperature", "0.2"])
    assert result.exit_code == 0, result.output
    for flag, arg in [
        ("scale", "scale=8"),
        ("margin", "margin=0.3"),
        ("loss-lr-multiplier", "lr_multiplier=5"),
    ]:
        assert f"--{flag} is deprecated: use --loss-arg {arg}" in result.stderr
    assert "--loss-arg temperature has no effect with --loss arcface" in result.stderr
    options = json.loads((out / "config.json").read_text())["loss"]["options"]
    assert options == {"scale": 8.0, "margin": 0.3, "lr_multiplier": 5.0, "temperature": 0.2}


def test_loss_args_are_checked_against_the_loss_before_any_data_is_read(tmp_path):
    def error(*args):
        result = runner.invoke(app, ["train", str(tmp_path), *args, "--out", str(tmp_path / "run")])
        assert result.exit_code == 1 and not (tmp_path / "run").exists()
        (line,) = result.stderr.strip().splitlines()
        return line

    line = error("--loss", "margin", "--loss-arg", "margn=0.5")
    assert line == (
        "error: --loss-arg margn: no such option of --loss margin (did you mean margin?); its options: margin"
    )
    assert "is a method option: --method-arg queue_size=" in error(
        "--loss", "supcon", "--loss-arg", "queue_size=8"
    )
    assert "--loss-arg distance: not an option, set by --distance" in error("--loss-arg", "distance=cosine")
    assert error("--loss", "arcface", "--loss-arg", "scale=big") == (
        "error: --loss-arg scale takes float, got 'big'"
    )
    assert error("--loss-arg", "nonsense").startswith("error: --loss-arg must look like KEY=VALUE")


def test_list_loss_args_shows_each_option_with_the_losss_own_default():
    import inspect

    from siamese.losses import LOSSES

    for name, cls in LOSSES.items():
        result = runner.invoke(app, ["train", "--list-loss-args", name])
        assert result.exit_code == 0, result.output
        params = inspect.signature(cls).parameters
        for option in ("margin", "temperature", "beta", "scale", "sub_centers", "lr_multiplier"):
            if option in params:
                assert (
                    f"{option} ({params[option].annotation}, default {params[option].default!r})"
                    in result.output
                )
        assert "distance (" not in result.output  # set by --distance, not a loss option
    result = runner.invoke(app, ["train", "--list-loss-args", "circle"])
    assert result.exit_code == 1 and "unknown loss 'circle'" in result.stderr


def test_train_margin_softmax_refuses_euclidean_and_degrees(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path), "--loss", "cosface", "--distance", "euclidean"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: --loss cosface trains with the cosine distance only; "
        "--distance euclidean cannot be used with it"
    ]
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    args = ["train", str(data), "--preset", "digits", "--loss", "arcface", "--loss-arg", "margin=28.6"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and not (tmp_path / "run").exists()  # refused before any data is read
    (line,) = result.stderr.strip().splitlines()
    assert "margin must be in [0, pi/2) radians" in line and "28.6 degrees is 0.4992" in line


def test_train_without_data_uses_the_embedded_characters(tmp_path, monkeypatch, glyphs_cache):
    monkeypatch.setenv("SIAMESE_CACHE", str(glyphs_cache))
    out = tmp_path / "run"
    tiny = ["--epochs", "1", "--samples-per-epoch", "128", "--eval-pairs", "32", "--embedding-dim", "8"]
    result = runner.invoke(app, ["train", *tiny, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "embedded characters" in result.stdout and "preset glyphs" in result.stdout
    assert "test EER" in result.stdout and "using batch" not in result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["root"] is None and config["loss"]["name"] == "supcon"
    assert config["data"]["sampler"] == "mperclass" and config["optim"]["batch_size"] == 64
    summary = json.loads((out / "summary.json").read_text())
    assert summary["identities"] == {"train": 64, "val": 22, "test": 22} and summary["test"]["pairs"] == 32
    split = json.loads((out / "split.json").read_text())
    assert not set(split["test"]) & set(split["train"]) and "latin-small-letter-a" in sum(split.values(), [])


def test_init_from_a_grayscale_run_into_a_colour_preset(tiny_run, tmp_path):
    """`--init` with no architecture flag takes the init's (the tiny run's 8-d digits encoder) into
    a `face-wild` run, whose colour input is fitted from the init's single channel."""
    run_dir, data = tiny_run
    out = tmp_path / "wild"
    args = ["train", str(data), "--preset", "face-wild", "--init", str(run_dir), "--epochs", "1"]
    args += ["--batch-size", "8", "--samples-per-epoch", "16", "--eval-pairs", "8", "--out", str(out)]
    result = runner.invoke(app, [*args, "--val-fraction", "0.25", "--test-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "checkpoints" / "best.json").read_text())
    start = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    assert meta["encoder"]["in_channels"] == 3 and start["encoder"]["in_channels"] == 1
    assert meta["embedding_dim"] == start["embedding_dim"] == 8
    assert {k: v for k, v in meta["encoder"].items() if k != "in_channels"} == {
        k: v for k, v in start["encoder"].items() if k != "in_channels"
    }
