"""Every trainer refuses an argument it cannot train with in one `error:` line naming the trainer and
the argument (exit status 2, as the rest of the CLI), before it reads a file or loads a model."""
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from nodeforge.training import (common, controlnet, data, depth, dreambooth, embedding, latent_upscaler,  # noqa: E402
                                lora, shapes, upscaler)

LORA = ["imgs", "--base", "nodeforge-shapes", "--out", "x.safetensors"]
DB = ["--instance-dir", "imgs", "--instance-prompt", "a sks shape", "--base", "nodeforge-shapes",
      "--out", "x.safetensors"]
CASES = [
    (lora, LORA + ["--rank", "0"], "train-lora: argument --rank: 0 is out of range"),
    (lora, LORA + ["--steps", "0"], "train-lora: argument --steps: 0 is out of range"),
    (lora, LORA + ["--batch", "-2"], "train-lora: argument --batch: -2 is out of range"),
    (lora, LORA + ["--lr", "-0.001"], "train-lora: argument --lr: -0.001 is out of range: use a number above 0"),
    (lora, LORA + ["--lr", "nan"], "train-lora: argument --lr: nan is out of range"),
    (lora, LORA + ["--alpha", "0"], "train-lora: argument --alpha: 0 is out of range"),
    (lora, LORA + ["--noise-offset", "-0.1"], "train-lora: argument --noise-offset: -0.1 is out of range"),
    (lora, LORA + ["--resolution", "60"], "train-lora: argument --resolution: 60 is not a multiple of 8"),
    (lora, LORA + ["--seed", "-1"], "train-lora: argument --seed: -1 is out of range"),
    (lora, LORA + ["--threads", "0"], "train-lora: argument --threads: 0 is out of range"),
    (lora, LORA + ["--steps", "ten"], "train-lora: argument --steps: 'ten' is not a whole number"),
    (lora, ["imgs", "--out", "x.safetensors"], "train-lora: the following arguments are required: --base"),
    (dreambooth, DB + ["--prior-weight", "-1"], "train-dreambooth: argument --prior-weight: -1 is out of range"),
    (dreambooth, DB + ["--class-images", "0"], "train-dreambooth: argument --class-images: 0 is out of range"),
    (dreambooth, DB + ["--rank", "0"], "train-dreambooth: argument --rank: 0 is out of range"),
    (dreambooth, DB[2:], "train-dreambooth: the following arguments are required: --instance-dir"),
    (embedding, ["--out", "e.safetensors", "--vectors", "0"], "train-embedding: argument --vectors: 0 is out of range"),
    (embedding, ["--out", "e.safetensors", "--vectors", "75"], "from 1 to 74 (the text encoder's 77 tokens"),
    (embedding, ["--out", "e.safetensors", "--images", "0"], "train-embedding: argument --images: 0 is out of range"),
    (embedding, ["--out", "e.safetensors", "--seeds", "0"], "train-embedding: argument --seeds: 0 is out of range"),
    (upscaler, ["--out", "u.safetensors", "--crop", "0"], "train-upscaler: argument --crop: 0 is out of range"),
    (upscaler, ["--out", "u.safetensors", "--crop", "65"], "from 1 to 64 (crops of the 64 px inputs)"),
    (upscaler, ["--out", "u.safetensors", "--vae-fraction", "1.5"], "argument --vae-fraction: 1.5 is out of range"),
    (upscaler, ["--out", "u.safetensors", "--held-out", "0"], "train-upscaler: argument --held-out: 0 is out of"),
    (latent_upscaler, ["--out", "r.safetensors", "--channels", "48"],
     "train-latent-upscaler: argument --channels: 48 is not a multiple of 32"),
    (latent_upscaler, ["--out", "r.safetensors", "--blocks", "1"], "argument --blocks: 1 is out of range"),
    (depth, ["--out", "d", "--hidden", "24"], "train-depth: argument --hidden: 24 is not a multiple of 16"),
    (controlnet, ["--out", "cn", "--images", "0"], "train-controlnet: argument --images: 0 is out of range"),
    (controlnet, ["--out", "cn", "--empty-rate", "2"], "train-controlnet: argument --empty-rate: 2 is out of range"),
    (controlnet, ["--out", "cn", "--conditioning-channels", "16", "0", "64"], "argument --conditioning-channels: 0"),
    (controlnet, ["--steps", "3"], "train-controlnet: give --out (train) or --evaluate FOLDER (measure)"),
    (shapes, ["--log-every", "0"], "nodeforge.training.shapes: argument --log-every: 0 is out of range"),
    (shapes, ["--vae-channels", "32", "64"], "argument --vae-channels: give 3 widths (the VAE's factor is 4)"),
    (shapes, ["--unet-channels", "64", "130"], "argument --unet-channels: every width must be a multiple of 32"),
    (shapes, ["--unet-attention-from", "3"], "argument --unet-attention-from: use a level below 3"),
    (data, ["out", "--n", "-1"], "nodeforge.training.data: argument --n: -1 is out of range"),
]


@pytest.mark.parametrize("module,argv,message", CASES, ids=[f"{m.__name__.rsplit('.', 1)[1]}:{' '.join(a[-2:])}"
                                                             for m, a, _ in CASES])
def test_an_argument_a_trainer_cannot_use_is_one_error_line_before_anything_runs(module, argv, message, capsys,
                                                                                 no_base_load):
    with pytest.raises(SystemExit) as exit_:
        module.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_number_types_accept_their_bounds_and_say_the_range():
    assert common.whole(1, 74)("74") == 74 and common.whole(0)("0") == 0
    assert common.real(0.0, 1.0)("1") == 1.0 and common.RATE("1e-9") == 1e-9
    with pytest.raises(Exception, match="use a whole number from 1 to 74"):
        common.whole(1, 74)("75")
    with pytest.raises(Exception, match="use a number above 0"):
        common.RATE("0")
    with pytest.raises(Exception, match="inf is out of range"):
        common.STD("inf")


def test_the_command_line_shows_a_trainer_error_as_one_line_without_a_traceback(tmp_path):
    """Through `nodeforge`, as a user types it: exit status 1, one `error:` line on stderr."""
    done = subprocess.run([sys.executable, "-m", "nodeforge.cli", "train-lora", str(tmp_path / "missing"),
                           "--base", "nodeforge-shapes", "--out", str(tmp_path / "x.safetensors"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == f"error: train-lora: no folder {tmp_path / 'missing'}; give a folder of images with " \
                          "same-named .txt captions\n"
