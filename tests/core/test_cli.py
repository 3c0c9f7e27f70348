"""The command line: run, validate, nodes; one-line errors and exit codes; --set; PNG input."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodeforge import Workflow, save_workflow
from nodeforge.cli import main
from nodeforge.paths import builtin_dir

ROOT = Path(__file__).resolve().parents[2]
ARITH = ROOT / "tests" / "packs"


pytestmark = pytest.mark.usefixtures("packs_on_node_path")


def write(tmp_path, wf: Workflow, name="wf.json") -> Path:
    return save_workflow(wf, tmp_path / name)


def simple() -> Workflow:
    wf = Workflow()
    wf.add("Number", {"value": 3}, title="start")
    wf.add("Scale", {"factor": 2}, {"value": ("1", "value")})
    wf.add("WriteText", {"prefix": "result"}, {"value": ("2", "value")})
    return wf


def test_run_prints_where_each_output_went_and_exits_0(tmp_path, capsys):
    path = write(tmp_path, simple())
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    written = Path(out.strip())
    assert written == tmp_path / "o" / "result_3.txt" and written.read_text() == "6.0\n"
    assert err == "", "quiet when not on a terminal"


def test_run_verbose_shows_progress_node_by_node(tmp_path, capsys):
    path = write(tmp_path, simple())
    assert main(["run", str(path), "--out", str(tmp_path), "--device", "cpu", "-v"]) == 0
    err = capsys.readouterr().err
    assert "[1/3] 1 Number (start) ..." in err and "[3/3] 3 WriteText ..." in err
    assert "finished in" in err and "3 ran" in err


def test_set_changes_params_by_id_or_title(tmp_path, capsys):
    path = write(tmp_path, simple())
    assert main(["run", str(path), "--out", str(tmp_path), "--device", "cpu",
                 "--set", "start.value=10", "--set", "2.factor=3"]) == 0
    assert Path(capsys.readouterr().out.strip()).read_text() == "30.0\n"


@pytest.mark.parametrize("override, needle", [
    ("nobody.value=1", "no node with id or unique title 'nobody'"),
    ("2.speed=1", "node 2 (Scale) has no param 'speed' (params: factor)"),
    ("2.factor=abc", "node 2 (Scale), factor: expected a whole number, got 'abc'"),
    ("2.factor=1000", "node 2 (Scale), factor: 1000 is above the maximum 100"),
    ("garbage", "expected ID.param=VALUE"),
])
def test_user_errors_are_one_line_and_exit_1(tmp_path, capsys, override, needle):
    path = write(tmp_path, simple())
    code = main(["run", str(path), "--out", str(tmp_path), "--device", "cpu", "--set", override])
    err = capsys.readouterr().err
    assert code == 1
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_failing_node_is_one_line_unless_debug(tmp_path, capsys):
    wf = simple()
    wf.add("Fail", {"message": "kaput"}, {"value": ("2", "value")})
    wf.add("WriteText", {}, {"value": ("4", "value")})
    path = write(tmp_path, wf)
    assert main(["run", str(path), "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: node 4 (Fail): RuntimeError: kaput\n"
    assert main(["run", str(path), "--out", str(tmp_path), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_bad_files_and_unknown_nodes(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert main(["run", str(bad)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    wf = simple()
    wf.add("Mystery", {}, {})
    path = write(tmp_path, wf)
    assert main(["validate", str(path)]) == 1
    assert "node 4 (Mystery), type: unknown node type 'Mystery'" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.json")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_validate_ok(tmp_path, capsys):
    path = write(tmp_path, simple())
    assert main(["validate", str(path)]) == 0
    assert "3 nodes, valid" in capsys.readouterr().out


def test_run_accepts_a_png_with_an_embedded_workflow(tmp_path, capsys):
    from tests.core.test_workflow_file import _png_with_text

    png = tmp_path / "made.png"
    png.write_bytes(_png_with_text({"workflow": simple().dumps()}, itxt=True))
    assert main(["run", str(png), "--out", str(tmp_path / "o")]) == 0
    assert Path(capsys.readouterr().out.strip()).read_text() == "6.0\n"


def test_unknown_device_is_a_usage_error(tmp_path, capsys):
    path = write(tmp_path, simple())
    code, err = _one_line_error(capsys, lambda: main(["run", str(path), "--device"]))
    assert code == 2 and "argument --device: expected one argument" in err
    code, err = _one_line_error(capsys, lambda: main(["run", str(path), "--device", "npu", "--out", str(tmp_path)]))
    assert code == 2 and "argument --device: unknown device 'npu': use auto, cpu, cuda, cuda:N or mps" in err, err
    assert not (tmp_path / "result_3.txt").exists()


def test_nodes_lists_types_with_ports_and_params(capsys):
    assert main(["nodes"]) == 0
    out = capsys.readouterr().out
    assert "  Scale" in out and "in   value: NUMBER" in out and "param factor: INT (min -100, max 100) = 2" in out
    assert main(["nodes", "--json"]) == 0
    specs = {s["type"]: s for s in json.loads(capsys.readouterr().out)}
    assert specs["Choose"]["params"][0]["choices"] == ["keep", "negate"]
    assert specs["Show"]["output_node"] is True


def _a1111_png(path: Path) -> Path:
    """A 1x1 PNG carrying A1111 parameters, written without Pillow."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    text = b"parameters\0a red circle\nSteps: 20, Sampler: Euler, CFG scale: 5, Seed: 42, Size: 64x64"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
                     + chunk(b"tEXt", text) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b""))
    return path


COLD_COMMANDS = {
    "help": ["--help"],
    "validate": ["validate", str(builtin_dir("workflows") / "txt2img.json")],
    "nodes": ["nodes"],
    "nodes --json": ["nodes", "--json"],
    "import ComfyUI": ["import", str(ROOT / "tests" / "interop" / "data" / "all-nodes-api.json"), "-o", "{tmp}/a.json"],
    "import PNG": ["import", "{tmp}/a1111.png", "-o", "{tmp}/b.json"],
    "export": ["export", str(builtin_dir("workflows") / "txt2img.json"), "--to", "comfyui-api", "-o", "{tmp}/c.json"],
}


def _imported_after(argv: list[str], heavy: tuple[str, ...], cwd: Path) -> list[str]:
    """Which of `heavy` a fresh process has imported after `nodeforge ARGV` (which must succeed)."""
    code = ("import sys; from nodeforge.cli import main\n"
            "try:\n    rc = main(%r)\nexcept SystemExit as exc:\n    rc = exc.code\n"
            "print([m for m in %r if m in sys.modules]); sys.exit(rc)") % (argv, heavy)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", list(COLD_COMMANDS))
def test_commands_that_run_nothing_start_without_torch_diffusers_or_qt(tmp_path, command):
    # Issue 26: --help, validate, nodes, import and export must stay fast; torch alone costs ~2 s.
    _a1111_png(tmp_path / "a1111.png")
    argv = [a.format(tmp=tmp_path) for a in COLD_COMMANDS[command]]
    heavy = ("torch", "diffusers", "transformers", "peft", "PySide6", "safetensors")
    assert _imported_after(argv, heavy, tmp_path) == [], command


def test_a_cold_run_of_the_demo_graph_imports_neither_diffusers_nor_transformers(tmp_path):
    # Issue 26: their model classes cost ~6 s to import; the pack's lite models (nodes/lite) draw the
    # same pixels (tests/nodes/test_lite_models.py) with torch alone.
    argv = ["run", str(builtin_dir("workflows") / "txt2img.json"), "--out", str(tmp_path), "-q", "--device", "cpu"]
    heavy = ("diffusers", "transformers", "peft", "PySide6", "scipy", "torch._dynamo")
    assert _imported_after(argv, heavy, tmp_path) == []
    assert len(list(tmp_path.glob("txt2img_*.png"))) == 1


def test_asking_for_a_gpu_that_is_not_there_is_a_one_line_error(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = write(tmp_path, simple())
    assert main(["run", str(path), "--device", "cuda", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: device 'cuda' is not available") and err.count("\n") == 1


def test_version_names_the_release_and_what_torch_can_use_here(capsys):
    import torch

    import nodeforge

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first.startswith(f"nodeforge {nodeforge.__version__} ")
    assert second.startswith(f"torch {torch.__version__}, CPU yes, ")
    cuda_usable = "yes (" in second.split("CUDA", 1)[1].split(",")[0]
    assert cuda_usable == torch.cuda.is_available()
    if torch.version.cuda is None and not getattr(torch.version, "hip", None):
        assert "CUDA no (CPU-only torch build)" in second


# -- hostile command lines: one line on stderr, never a traceback or a hang ------------------------------
def _one_line_error(capsys, call) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        call()
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return info.value.code, err


@pytest.mark.parametrize("device, needle", [
    ("gpu", "unknown device 'gpu' (did you mean 'cuda'?): use auto, cpu, cuda, cuda:N or mps"),
    ("TPU", "unknown device 'TPU': use auto, cpu, cuda, cuda:N or mps"),
    ("cuda:zero", "unknown device 'cuda:zero'"),
])
def test_an_unknown_device_is_a_one_line_usage_error_naming_the_devices(tmp_path, capsys, device, needle):
    path = write(tmp_path, simple())
    code, err = _one_line_error(capsys, lambda: main(["run", str(path), "--device", device, "--out", str(tmp_path)]))
    assert code == 2 and needle in err and "--device" in err
    assert not (tmp_path / "result_3.txt").exists()


def test_device_names_ignore_case(tmp_path, capsys):
    path = write(tmp_path, simple())
    assert main(["run", str(path), "--device", "CPU", "--out", str(tmp_path / "o")]) == 0
    assert Path(capsys.readouterr().out.strip()).read_text() == "6.0\n"


@pytest.mark.parametrize("budget", ["infG", "inf", "nanM", "1e999", "lots"])
def test_a_cache_budget_that_is_not_a_size_is_a_one_line_error(tmp_path, capsys, budget):
    path = write(tmp_path, simple())
    code, err = _one_line_error(capsys, lambda: main(["run", str(path), "--cache-budget", budget]))
    assert code == 2 and f"not a size: {budget!r}" in err


def test_a_cache_budget_with_a_unit_is_accepted(tmp_path, capsys):
    path = write(tmp_path, simple())
    assert main(["run", str(path), "--cache-budget", "1.5M", "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()


def test_a_5000_digit_seed_is_one_short_line(tmp_path, capsys):
    path = write(tmp_path, simple())
    huge = "9" * 5000
    assert main(["run", str(path), "--set", f"2.factor={huge}", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == "error: node 2 (Scale), factor: a 5000-digit number is far out of range; the maximum is 100\n"


def test_a_5000_digit_number_in_the_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "huge.json"
    path.write_text('{"nodeforge": 1, "nodes": {"1": {"type": "Number", "params": {"value": %s}}}}' % ("9" * 5000))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "5000 digits" in err and err.count("\n") == 1 and len(err) < 300, err


def test_a_symlink_loop_as_the_workflow_is_a_one_line_error(tmp_path, capsys):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop.name)
    for command in ("run", "validate"):
        assert main([command, str(loop)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {loop}: ") and "symbolic links" in err and err.count("\n") == 1


def test_a_word_that_is_neither_command_nor_file_is_an_error_naming_the_commands(tmp_path, capsys, monkeypatch):
    import nodeforge.cli as cli

    opened = []
    monkeypatch.setattr(cli, "_open_editor", lambda path: opened.append(path) or 0)
    monkeypatch.chdir(tmp_path)
    assert main(["rnu", "workflows/txt2img.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'rnu' is neither a command nor a file; commands: ") and err.count("\n") == 1
    for command in ("run", "validate", "nodes", "train-lora"):
        assert command in err
    assert opened == [], "the editor must not open (it would hang in a script)"
    (tmp_path / "mine.json").write_text("{}")
    assert main(["mine.json"]) == 0 and opened == ["mine.json"], "an existing file still opens the editor"


def test_an_unknown_word_in_a_script_exits_instead_of_hanging(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "nodeforge.cli", "frobnicate"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "neither a command nor a file" in proc.stderr and "Traceback" not in proc.stderr


def test_nodes_json_into_a_closed_pipe_is_silent(tmp_path):
    # The reader end is closed before the command writes: every write gets EPIPE, as `| head` does.
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "NODEFORGE_NODE_PATH": str(ARITH), "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run([sys.executable, "-m", "nodeforge.cli", "nodes", "--json"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, timeout=120)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141


class _Terminal(__import__("io").StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "piped"])
def test_ctrl_c_during_a_run_says_interrupted_on_a_line_of_its_own(tmp_path, monkeypatch, tty):
    import io

    import nodeforge.cli as cli

    err = _Terminal() if tty else io.StringIO()

    def run_until_ctrl_c(args):
        err.write("\r    [######..................] step 6/24")    # the progress bar, no newline yet
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(cli, "cmd_run", run_until_ctrl_c)
    assert main(["run", str(write(tmp_path, simple()))]) == 130
    # The terminal echoes ^C after the bar: the message must not join it ("^Cinterrupted").
    expected = "step 6/24\ninterrupted\n" if tty else "step 6/24interrupted\n"
    assert err.getvalue().endswith(expected)


def test_ctrl_c_in_train_lora_is_interrupted_not_a_traceback(monkeypatch):
    import nodeforge.training.lora as lora

    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(lora, "main", lambda argv: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["train-lora", "x", "--base", "b", "--out", "o.safetensors"]) == 130
    assert err.getvalue() == "\ninterrupted\n"


def test_train_lora_help_explains_each_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train-lora", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("--rank N", "4"), ("--alpha A", "4.0"), ("--steps N", "500"), ("--lr RATE", "0.001"),
                            ("--batch N", "16"), ("--seed N", "0"), ("--resolution PX", "64"),
                            ("--device DEVICE", "auto"), ("--threads N", "2")):
        start = text.index(option + " ")
        described = text[start + len(option):].split(" --", 1)[0]
        assert f"(default: {default})" in described, (option, described)
        assert len(described.replace(f"(default: {default})", "").split()) >= 3, (option, described)   # says what it is


# -- issue 31, item 8: CLI manners -------------------------------------------------------------------------
@pytest.mark.parametrize("argv, needle", [
    (["--ot", "x"], "error: nodeforge run: unrecognized argument --ot; did you mean --out? (see nodeforge run --help)"),
    (["--devcie", "cpu"], "did you mean --device? (see nodeforge run --help)"),
    (["--sett=2.factor=3"], "unrecognized argument --sett; did you mean --set?"),
    (["--zzz"], "error: nodeforge run: unrecognized argument --zzz (see nodeforge run --help)"),
])
def test_a_mistyped_flag_names_the_flag_meant_and_the_sub_commands_help(tmp_path, capsys, argv, needle):
    path = write(tmp_path, simple())
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(path), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and needle in err and err.count("\n") == 1
    assert "nodeforge --help" not in err
    assert not list(tmp_path.glob("result_*")), "nothing ran"


def _sampler_registry():
    from nodeforge.core.registry import Registry
    from nodeforge.core.samplers import SAMPLER_NAMES, SCHEDULE_NAMES
    from nodeforge.core.spec import NodeSpec, Param
    from nodeforge.core.types import ParamRole

    return Registry([NodeSpec("Denoise", "sampling", lambda ctx, **kw: {}, params=(
        Param.choice("sampler", SAMPLER_NAMES, default="euler", role=ParamRole.SAMPLER),
        Param.choice("schedule", SCHEDULE_NAMES, default="default", role=ParamRole.SCHEDULE),
        Param.choice("mode", ("keep", "negate"))))])


@pytest.mark.parametrize("value, sampler, schedule", [
    ("euler_a", "euler_ancestral", "default"),
    ("Euler a", "euler_ancestral", "default"),
    ("DPM++ 2M Karras", "dpmpp_2m", "karras"),
    ("DPM++ 2M SDE", "dpmpp_2m_sde", "default"),
    ("UniPC", "uni_pc", "default"),
    ("Heun", "heun", "default"),
    ("dpmpp_2m", "dpmpp_2m", "default"),
])
def test_set_takes_a1111_and_comfyui_sampler_names(value, sampler, schedule):
    from nodeforge.cli import apply_overrides

    wf = Workflow()
    wf.add("Denoise", {"sampler": "euler", "schedule": "default", "mode": "keep"})
    apply_overrides(wf, [f"1.sampler={value}"], _sampler_registry())
    assert (wf.nodes["1"].params["sampler"], wf.nodes["1"].params["schedule"]) == (sampler, schedule)


@pytest.mark.parametrize("override, needle", [
    ("1.sampler=eulr_ancestrl", "'eulr_ancestrl' is not one of its choices; did you mean 'euler_ancestral'?"),
    ("1.sampler=DPM++ 2S a", "did you mean"),       # A1111 would only approximate it: not taken silently
    ("1.mode=negat", "node 1 (Denoise), mode: 'negat' is not one of its choices; did you mean 'negate'? "
                     "(choices: keep, negate)"),
])
def test_set_a_choice_the_param_lacks_suggests_the_closest_and_lists_them_all(override, needle):
    from nodeforge.cli import UsageError, apply_overrides
    from nodeforge.core.samplers import SAMPLER_NAMES

    wf = Workflow()
    wf.add("Denoise", {"sampler": "euler", "schedule": "default", "mode": "keep"})
    with pytest.raises(UsageError) as error:
        apply_overrides(wf, [override], _sampler_registry())
    text = str(error.value)
    assert needle in text and "..." not in text and "\n" not in text
    if ".sampler=" in override:
        assert f"(choices: {', '.join(SAMPLER_NAMES)})" in text
    assert wf.nodes["1"].params == {"sampler": "euler", "schedule": "default", "mode": "keep"}


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_an_out_folder_that_cannot_be_made_is_refused_before_the_graph_runs(tmp_path, capsys, where):
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "o" if where == "under-a-file" else Path("/proc/nodeforge-out")
    path = write(tmp_path, simple())
    assert main(["run", str(path), "--out", str(out), "--device", "cpu", "-v"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: cannot create or write to this folder (")
    assert err.endswith("choose a folder you can write to\n") and err.count("\n") == 1
    assert "[1/3]" not in err and "Traceback" not in err, "the graph did not run"
