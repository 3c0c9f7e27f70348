"""The `nodeforge` command: the editor, `run`, `validate`, `import`, `export`, `nodes` and the trainers
(`train-lora`, `train-dreambooth`, `train-upscaler`, `train-latent-upscaler`, `train-depth`,
`train-clip-vision`, `train-ipadapter`, `train-embedding`, `train-controlnet`, `train-flow`).

`run`, `validate`, `import` and the editor read NodeForge files and other tools' files alike
(ComfyUI workflows, API prompts and PNGs; A1111 parameters), detected from their content.

User mistakes end in one line per problem naming the node, the field and the fix, and exit
status 1; `--debug` adds the traceback. Nothing here imports torch or Qt until a command needs it.
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn, Sequence, TextIO

from nodeforge.core import events as ev
from nodeforge.core.errors import Cancelled, ValidationError, WorkflowError, WorkflowFileError
from nodeforge.core.files import output_paths
from nodeforge.core.types import ParamKind, ParamRole

# Trainers: command -> (module of nodeforge.training with a main(argv), what it trains). Each parses its own
# arguments, so `nodeforge train-X --help` is the trainer's own help.
TRAINERS = {"train-lora": ("lora", "a LoRA on a folder of captioned images"),
            "train-dreambooth": ("dreambooth", "a LoRA that teaches a subject from a few pictures (DreamBooth, "
                                               "prior preservation)"),
            "train-upscaler": ("upscaler", "the demo 4x upscaler (shapes-x4) on generated shapes"),
            "train-latent-upscaler": ("latent_upscaler", "the demo NN latent upscaler (shapes-resizer) on the "
                                                          "demo model's latents"),
            "train-depth": ("depth", "the demo depth estimator (shapes-depth, a tiny DPT) on generated shapes"),
            "train-clip-vision": ("clip_vision", "the demo CLIP vision encoder (shapes-clip-vision) on generated "
                                                  "shapes"),
            "train-ipadapter": ("ipadapter", "the demo IP-Adapter (shapes-ipadapter) for the demo model and "
                                             "shapes-clip-vision"),
            "train-embedding": ("embedding", "the demo textual-inversion embedding (shapes-sunset)"),
            "train-controlnet": ("controlnet", "the demo outline ControlNet (shapes-outline) on generated shapes"),
            "train-flow": ("flow", "a small SD3-architecture flow model on generated shapes"),
            "train-lcm": ("lcm", "an LCM-LoRA: few-step sampling distilled from a base model")}


class UsageError(Exception):
    """A command-line mistake (bad --set, bad device); shown as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: nodeforge run: argument --device: ...` (exit status 2).

    Sub-command parsers inherit this class, so every command gets it.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


_EXPORT_HELP = ("comfyui: a ComfyUI workflow (UI format 0.4, with the layout) its editor opens; "
                "comfyui-api: the prompt JSON ComfyUI's /prompt endpoint takes")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nodeforge",
        description="NodeForge: a node-graph studio for Stable Diffusion. "
                    "With no command (or with a FILE) it opens the editor.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="show the version and which devices torch can use, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a workflow headless (NodeForge, ComfyUI or A1111; JSON or PNG)")
    run.add_argument("file", help="workflow .json or .png (NodeForge, ComfyUI workflow or API prompt, A1111)")
    # NODEFORGE_OUTPUT is the editor's output folder too: set it and both save in one place.
    run.add_argument("--out", default=os.environ.get("NODEFORGE_OUTPUT") or "output",
                     help="folder for saved images (default: $NODEFORGE_OUTPUT, the editor's folder too, "
                          "else ./output)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="ID.param=VALUE",
                     help="change a param before running; ID is a node id or a node's unique title (repeatable)")
    run.add_argument("--previews", action="store_true", help="also write Preview nodes' images to the output folder")
    _add_device_options(run)
    run.add_argument("-v", "--verbose", action="store_true", help="show progress even when output is piped")
    run.add_argument("-q", "--quiet", action="store_true", help="print only where outputs went")
    run.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_model_map(run)

    from nodeforge.batch.command import add_parser as add_batch_parser

    add_batch_parser(sub)

    val = sub.add_parser("validate", help="check a workflow without running it")
    val.add_argument("file")
    val.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_model_map(val)

    imp = sub.add_parser("import", help="convert a ComfyUI or A1111 file into a NodeForge workflow")
    imp.add_argument("file", help="ComfyUI workflow or API prompt (.json or .png), or an A1111 .png")
    imp.add_argument("-o", "--output", metavar="OUT.json",
                     help="where to write it (default: FILE's name with .nodeforge.json, beside it; never over an "
                          "earlier one: give -o to replace it)")
    imp.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_model_map(imp)

    exp = sub.add_parser("export", help="write a workflow in another tool's format")
    exp.add_argument("file", help="a workflow (any format NodeForge reads)")
    exp.add_argument("--to", required=True, choices=["comfyui", "comfyui-api"], help=_EXPORT_HELP)
    exp.add_argument("-o", "--output", metavar="OUT.json", help="where to write it (default: standard output)")
    exp.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_model_map(exp)

    nodes = sub.add_parser("nodes", help="list node types with what they do, their ports and params")
    nodes.add_argument("types", nargs="*", metavar="TYPE", help="only these node types (e.g. UNetDenoise)")
    nodes.add_argument("--json", action="store_true", help="machine-readable output")

    for command, (_, what) in TRAINERS.items():
        sub.add_parser(command, help=f"train {what} (see {command} --help)", add_help=False)
    gui = sub.add_parser("gui", help="open the editor (the default)")
    gui.add_argument("file", nargs="?")
    return parser


def _add_device_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--device", default="auto", type=_device, help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    run.add_argument("--offload", choices=("none", "model", "sequential"), default="none",
                     help="keep models in CPU memory: 'model' moves only the running model to the GPU (Flux's "
                          "transformer and T5 take turns), 'sequential' each layer as it runs (least GPU memory, "
                          "slowest); default none")
    run.add_argument("--cache-budget", type=_size, default=None, metavar="BYTES",
                     help="memory budget of the output cache (e.g. 4G); default 40%% of RAM")


def _add_model_map(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-map", dest="model_map", action="append", default=[], metavar="OLD=NEW",
                        help="use the model NEW wherever the file names OLD (a file name, path or stem; repeatable); "
                             f"'KIND:*=NEW' for every missing model of a kind ({_map_kinds()})")


def _map_kinds() -> str:
    """The kinds a `KIND:*` map key takes, from the one table of kinds (models first, then image)."""
    from nodeforge.core.models import MODEL_KINDS
    from nodeforge.core.types import FileKind

    return ", ".join(kind.value for kind in (*MODEL_KINDS, FileKind.IMAGE))


def _version() -> str:
    from nodeforge import __version__

    return __version__


class _VersionAction(argparse.Action):
    """--version: torch is imported only when asked, so other commands do not pay for it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        from nodeforge.devices import torch_support

        print(f"nodeforge {_version()} (Python {sys.version.split()[0]})\n{torch_support()}")
        parser.exit()


def _size(text: str) -> int:
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
    shown = text if len(text) <= 40 else text[:40] + "..."
    text = text.strip().lower().rstrip("b")
    try:
        number = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        number = math.nan
    # float() also takes "inf" and "nan"; a budget is a finite number of bytes.
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"not a size: {shown!r} (use bytes or 512M, 4G)")
    return int(number)


def _device(text: str) -> str:
    from nodeforge.devices import parse_device

    try:
        return parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _command_names(parser: argparse.ArgumentParser) -> list[str]:
    """The sub-commands the parser knows (so a command added there is known everywhere)."""
    names = list(_sub_parsers(parser))
    if not names:  # pragma: no cover
        raise AssertionError("build_parser adds no sub-commands")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # `nodeforge nodes --json | head`: the reader left. Say nothing (as `yes | head`), and
        # point stdout at devnull so the interpreter's final flush cannot raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose pipe closed


def _main(argv: list[str]) -> int:
    # `nodeforge FILE` and plain `nodeforge` open the editor.
    if not argv:
        return _open_editor(None)
    known = set(_command_names(build_parser()))
    if argv[0] not in known and not argv[0].startswith("-"):
        if not os.path.exists(argv[0]):
            # A typo or a newer version's command must not open the editor (it would hang in
            # a script or under QT_QPA_PLATFORM=offscreen).
            shown = argv[0] if len(argv[0]) <= 60 else argv[0][:60] + "..."
            print(f"error: {shown!r} is neither a command nor a file; commands: "
                  f"{', '.join(sorted(known))} (see nodeforge --help)", file=sys.stderr)
            return 2
        return _open_editor(argv[0])
    if argv[0] in TRAINERS:
        return _train(argv[0], argv[1:])
    args = _parse(build_parser(), argv)
    if args.command == "gui":
        return _open_editor(args.file)
    if args.command is None:
        return _open_editor(None)
    try:
        return _dispatch(args)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except (WorkflowError, UsageError) as exc:
        return _print_error(exc, getattr(args, "debug", False))
    except KeyboardInterrupt:
        return interrupted()


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, but an unknown flag is the sub-command's error (`see nodeforge run --help`), with
    the flag it is spelled like: argparse would blame the top-level parser and suggest nothing."""
    args, extras = parser.parse_known_args(argv)
    if not extras:
        return args
    command = getattr(args, "command", None)
    owner = _sub_parsers(parser).get(command, parser) if command else parser
    flags = [option for action in owner._actions for option in action.option_strings]
    unknown = next((extra for extra in extras if extra.startswith("-")), None)
    if unknown is None:
        owner.error(f"unrecognized arguments: {' '.join(extras)}")
    name = unknown.partition("=")[0]
    close = difflib.get_close_matches(name, flags, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    owner.error(f"unrecognized argument {name}{hint}")


def _sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each sub-command's own parser, by name."""
    for action in parser._actions:  # argparse offers no public accessor for sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _train(command: str, argv: list[str]) -> int:
    """A trainer's own main(argv), imported only now (it needs torch)."""
    import importlib

    module, _ = TRAINERS[command]
    try:
        train = importlib.import_module(f"nodeforge.training.{module}").main
    except ImportError as exc:
        print(f"error: {command} is not available ({exc})", file=sys.stderr)
        return 1
    try:
        return int(train(argv) or 0)
    except KeyboardInterrupt:
        return interrupted()


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "batch":
        from nodeforge.batch.command import cmd_batch

        return cmd_batch(args)
    commands = {"run": cmd_run, "validate": cmd_validate, "import": cmd_import, "export": cmd_export,
                "nodes": cmd_nodes}
    if args.command not in commands:  # pragma: no cover - argparse restricts commands
        return 2
    return commands[args.command](args)


def _print_error(exc: WorkflowError | UsageError, debug: bool) -> int:
    """One `error:` line per problem (a failed validation, an export refused for every node at
    fault), else one for the error; with --debug the traceback of what caused it. Exit status 1."""
    problems = getattr(exc, "problems", None)
    if isinstance(exc, WorkflowError) and problems and not isinstance(exc, WorkflowFileError):
        print_lines("error", [str(problem) for problem in problems])
        return 1
    print(f"error: {exc}", file=sys.stderr)
    if debug:
        original = getattr(exc, "original", None)
        traceback.print_exception(original or exc)
    return 1


def interrupted() -> int:
    """Ctrl+C: the terminal echoed ^C where the cursor was (after a progress bar, often), so the
    message starts a line of its own."""
    lead = "\n" if _isatty(sys.stderr) else ""
    print(f"{lead}interrupted", file=sys.stderr, flush=True)
    return 130


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _open_editor(path: str | None) -> int:
    try:
        from nodeforge.ui.app import main as gui_main
    except ImportError as exc:
        print(f"error: the editor is not available ({exc}); install PySide6 or use `nodeforge run`",
              file=sys.stderr)
        return 1
    return int(gui_main(path) or 0)


# -- run ---------------------------------------------------------------------------------------------
def apply_overrides(workflow: Any, overrides: Sequence[str], registry: Any) -> None:
    """Apply `ID.param=VALUE` strings; raise UsageError naming what is wrong."""
    for item in overrides:
        target, eq, value = item.partition("=")
        node_ref, dot, param = target.rpartition(".")
        if not eq or not dot or not node_ref or not param:
            raise UsageError(f"--set {item!r}: expected ID.param=VALUE, e.g. --set 5.seed=7 or --set positive.text=\"a cat\"")
        try:
            nid, declared = workflow.find_param(node_ref, param, registry)
        except LookupError as exc:
            raise UsageError(f"--set {item!r}: {exc}") from None
        node = workflow.nodes[nid]
        workflow.origins.pop((nid, param), None)     # the user's own value: any path they type is allowed
        if declared is not None and declared.kind is ParamKind.CHOICE and declared.file is None:
            value = _choice(item, f"node {nid} ({node.type})", declared, value, node.params, registry.get(node.type))
        try:  # store "7" as 7 so that the workflow saved in the PNG is typed
            node.params[param] = declared.coerce(value) if declared is not None else value
        except ValueError:
            node.params[param] = value  # validation reports it, naming the node and the field


def _choice(item: str, where: str, declared: Any, value: str, params: dict[str, Any], spec: Any) -> str:
    """A `--set` choice as the param spells it. A sampler may be given as A1111 or ComfyUI spell it
    ("euler_a", "Euler a", "DPM++ 2M Karras": the folded schedule is set too); anything else the
    param lacks is a UsageError with the closest-spelled choice and all of them."""
    options = declared.choice_list()
    if value in options:
        return value
    if declared.role is ParamRole.SAMPLER:
        sampler, schedule = _sampler_alias(value)
        if sampler in options:
            target = next((p for p in spec.params if p.role is ParamRole.SCHEDULE), None)
            if schedule is not None and target is not None and schedule in target.choice_list():
                params[target.name] = schedule
            return sampler
    close = difflib.get_close_matches(value.strip().lower(), options, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UsageError(f"--set {item!r}: {where}, {declared.name}: {value[:60]!r} is not one of its "
                     f"choices{hint} (choices: {', '.join(options)})")


def _sampler_alias(text: str) -> tuple[str | None, str | None]:
    """(sampler, folded schedule or None) for a ComfyUI or A1111 sampler name that names one of
    NodeForge's exactly (interop's tables); (None, None) for a name it would only approximate."""
    from nodeforge.interop.samplers import A1111_SAMPLERS, from_a1111, sampler_from_comfy

    comfy = sampler_from_comfy(text)
    if comfy.note is None:
        return comfy.name, None
    spaced = " ".join(text.replace("_", " ").split())
    sampler, schedule = from_a1111(spaced)
    if sampler.note is not None:
        return None, None
    folded = spaced.lower() not in A1111_SAMPLERS and schedule.note is None
    return sampler.name, schedule.name if folded else None


class ProgressPrinter:
    """Prints run events: a line per node and a step bar for long nodes (terminal only)."""

    def __init__(self, stream: TextIO, interactive: bool, workflow: Any, progress: bool = True) -> None:
        self.stream = stream
        self.interactive = interactive
        self.progress = progress        # False (-q, a pipe): only the nodes' warnings
        self.workflow = workflow
        self.total = 0
        self.done = 0
        self._bar_open = False

    def _label(self, nid: str, node_type: str) -> str:
        title = self.workflow.nodes[nid].title if nid in self.workflow.nodes else None
        return f"{nid} {node_type}" + (f" ({title})" if title else "")

    def __call__(self, event: ev.Event) -> None:
        out = self.stream
        if isinstance(event, ev.NodeWarning):       # said even when progress is not shown
            self._end_bar()
            out.write(f"warning: node {event.node_id} ({event.node_type}): {event.message}\n")
            out.flush()
        elif isinstance(event, ev.NodeFinished) and isinstance(event.output, dict) \
                and isinstance(event.output.get("text"), str):     # Show Value: said even when progress is not
            self._end_bar()
            self.done += 1
            out.write(f"{self._label(event.node_id, event.node_type)}: {event.output['text']}\n")
            out.flush()
        elif not self.progress:
            return
        elif isinstance(event, ev.RunStarted):
            self.total = len(event.order)
        elif isinstance(event, ev.NodeProgress):
            if self.interactive:
                width = 24
                filled = int(width * event.step / max(event.total, 1))
                out.write(f"\r    [{'#' * filled}{'.' * (width - filled)}] step {event.step}/{event.total}")
                out.flush()
                self._bar_open = True
            elif event.step == event.total or event.step % max(1, event.total // 4) == 0:
                out.write(f"    step {event.step}/{event.total}\n")
        elif isinstance(event, ev.NodeStarted):
            self._end_bar()
            out.write(f"[{self.done + 1}/{self.total}] {self._label(event.node_id, event.node_type)} ...\n")
            out.flush()
        elif isinstance(event, ev.NodeFinished):
            self._end_bar()
            self.done += 1
            if event.cached:
                out.write(f"[{self.done}/{self.total}] {self._label(event.node_id, event.node_type)}: cached\n")
            else:
                out.write(f"      done in {event.seconds:.2f} s\n")
            out.flush()
        elif isinstance(event, ev.RunFinished):
            self._end_bar()
            result = event.result
            out.write(f"finished in {result.seconds:.2f} s: {len(result.executed)} ran, "
                      f"{len(result.cached)} from cache\n")
            out.flush()

    def _end_bar(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False


def read_any(path: str, model_map: Sequence[str], registry: Any, *, missing_is_error: bool = False) -> Any:
    """A workflow from any format NodeForge reads, printing the import's warnings (one a line).

    With `missing_is_error` (run, validate) a model the import could not find is not a warning:
    `report_problems` says it in place of the validator's line for that node and field (so it
    is said once, and not at all when `--set` has fixed it)."""
    from nodeforge.interop import parse_model_map, read_workflow

    try:
        mapping = parse_model_map(model_map)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    imported = read_workflow(path, registry=registry, model_map=mapping)
    missing = set(imported.missing) if missing_is_error else set()
    print_lines("warning", [line for line in imported.warnings if line not in missing])
    return imported


MAX_LINES_SHOWN = 20     # a hostile file can hold 100,000 problems; the first ones are what to fix


def print_lines(kind: str, lines: Sequence[str]) -> None:
    """`kind: line` for the first MAX_LINES_SHOWN lines, then one line counting the rest."""
    for line in lines[:MAX_LINES_SHOWN]:
        print(f"{kind}: {line}", file=sys.stderr)
    if len(lines) > MAX_LINES_SHOWN:
        rest = len(lines) - MAX_LINES_SHOWN
        print(f"{kind}: ... and {rest} more {kind}{'s' if rest != 1 else ''} ({len(lines)} in all; fix the ones "
              "above first, or see them all in the editor's Problems panel)", file=sys.stderr)


def report_problems(problems: Sequence[Any], imported: Any) -> None:
    """Every problem, one an error line; a model the import could not find by its import line."""
    lines = [imported.line_for(problem) for problem in problems]
    print_lines("error", list(dict.fromkeys(lines)))


def cmd_run(args: argparse.Namespace) -> int:
    from nodeforge.core.engine import Engine, split_unreached, unreached_warning

    engine = Engine(device=args.device if args.device else "auto", output_dir=args.out,
                    cache_budget=args.cache_budget,
                    # A one-shot run: nothing reuses its models, so the pack may load lite ones (nodes/lite).
                    settings={"previews": args.previews, "lite_models": args.offload == "none",
                              "offload": args.offload})
    for failure in engine.registry.failures:
        print(f"warning: {failure}", file=sys.stderr)
    imported = read_any(args.file, args.model_map, engine.registry, missing_is_error=True)
    workflow = imported.workflow
    apply_overrides(workflow, args.overrides, engine.registry)
    try:
        plan = engine.plan(workflow)  # validate everything before loading torch
    except ValidationError as exc:
        report_problems(exc.problems, imported)
        return 1
    unreached = split_unreached(plan.workflow, plan.checked.problems, engine.registry)[1]
    print_lines("warning", [unreached_warning(problem) for problem in unreached])
    try:
        engine.resolved_device()
    except ValueError as exc:
        raise UsageError(f"--device {args.device}: {exc}") from None
    _make_output_folder(args.out)
    interactive = sys.stderr.isatty()
    show = (interactive or args.verbose) and not args.quiet
    result = engine.run(workflow, on_event=ProgressPrinter(sys.stderr, interactive, workflow, progress=show))
    written = [path for nid in result.outputs for path in output_paths(result.outputs[nid])]
    for path in written:
        print(path)
    images = [nid for nid, value in result.outputs.items() if not (isinstance(value, dict) and "text" in value)]
    if not written and images and not args.previews:      # (Show Value's text is printed above)
        print(f"warning: {_nothing_written(workflow, result, engine.registry, args.out)}", file=sys.stderr)
    # As ComfyUI: the outputs whose ancestry is valid ran; the others fail the command.
    for nid, problems in result.skipped.items():
        print(f"error: output node {nid} ({workflow.nodes[nid].type}) was not run:", file=sys.stderr)
        for problem in problems[:MAX_LINES_SHOWN]:
            print(f"  {problem}", file=sys.stderr)
        if len(problems) > MAX_LINES_SHOWN:
            print(f"  ... and {len(problems) - MAX_LINES_SHOWN} more", file=sys.stderr)
    return 1 if result.skipped else 0


def _nothing_written(workflow: Any, result: Any, registry: Any, out: str) -> str:
    """Why a run that went well left --out empty: its outputs only show images (Preview nodes)."""
    shown = []
    for nid in list(result.outputs)[:5]:
        spec = registry.get(workflow.nodes[nid].type)
        shown.append(f"node {nid} ({spec.title if spec is not None else workflow.nodes[nid].type})")
    more = " ..." if len(result.outputs) > 5 else ""
    return (f"nothing was written: the graph's outputs ({', '.join(shown)}{more}) only show images; add --previews "
            f"to write them to {out}, or end the graph in a Save Image node")


def _make_output_folder(out: str) -> None:
    """--out made (or found writable) before the graph runs, so a folder that cannot be is one line
    now rather than a FileNotFoundError after minutes of sampling."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".nodeforge-write-check-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--out {out}: cannot create or write to this folder ({reason}); "
                         "choose a folder you can write to") from None


# -- validate ---------------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from nodeforge.core.engine import Engine, unreached_warning

    started = time.perf_counter()
    engine = Engine(device="cpu")
    for failure in engine.registry.failures:
        print(f"warning: {failure}", file=sys.stderr)
    imported = read_any(args.file, args.model_map, engine.registry, missing_is_error=True)
    workflow = imported.workflow
    # A file made in ComfyUI is checked as ComfyUI does: a half-wired node that leads to no output
    # is a warning there (it never runs); in a NodeForge file it is an error to fix.
    problems, unreached = engine.validate_outputs(workflow) if imported.foreign else (engine.validate(workflow), [])
    print_lines("warning", [unreached_warning(problem) for problem in unreached])
    if problems:
        report_problems(problems, imported)
        return 1
    elapsed = (time.perf_counter() - started) * 1000
    print(f"ok: {args.file}: {len(workflow.nodes)} nodes, valid ({elapsed:.0f} ms)")
    return 0


# -- import / export ------------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    from nodeforge.core.registry import default_registry
    from nodeforge.core.workflow import save_workflow

    source = Path(args.file)
    imported = read_any(args.file, args.model_map, default_registry())
    out = Path(args.output) if args.output else source.with_name(_stem(source) + ".nodeforge.json")
    if out.resolve() == source.resolve():
        raise UsageError(f"-o {out}: that is the file being imported; choose another name")
    if not args.output and out.exists():    # an earlier import the user may have edited since
        raise UsageError(f"{out} already exists (an earlier import, perhaps edited since); give -o NEW.json, or "
                         f"-o {out} to replace it")
    _writing(f"-o {out}", lambda: save_workflow(imported.workflow, out))
    print(f"{out}: {len(imported.workflow.nodes)} nodes from a {imported.format}"
          + (f", {len(imported.warnings)} warning{'s' if len(imported.warnings) != 1 else ''}"
             if imported.warnings else ""))
    return 0


def _writing(flag: str, write: Any) -> None:
    """Run `write`; a file that cannot be written (read-only, a full disk, a folder that is a file)
    is one line naming the flag's path, the file there left as it was."""
    try:
        write()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        fix = "" if "another name" in reason else "; choose another name or a folder you can write to"
        raise UsageError(f"{flag}: cannot write it ({reason}){fix}") from None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nodeforge.json", ".json", ".png", ".txt"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem or "workflow"


def cmd_export(args: argparse.Namespace) -> int:
    from nodeforge.core.files import atomic_write_bytes as write, refuse_read_only
    from nodeforge.core.registry import default_registry
    from nodeforge.interop import export_comfyui_api, export_comfyui_ui

    registry = default_registry()
    imported = read_any(args.file, args.model_map, registry)
    notes: list[str] = []
    export, what = ((export_comfyui_ui, "ComfyUI workflow") if args.to == "comfyui"
                    else (export_comfyui_api, "ComfyUI API prompt"))
    data = export(imported.workflow, registry=registry, warnings=notes)
    for line in notes:
        print(f"warning: {line}", file=sys.stderr)
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if args.output:
        if Path(args.output).resolve() == Path(args.file).resolve():
            raise UsageError(f"-o {args.output}: that is the file being exported; choose another name")
        _writing(f"-o {args.output}", lambda: refuse_read_only(args.output) or write(Path(args.output),
                                                                                    text.encode("utf-8")))
        count = len(data["nodes"]) if args.to == "comfyui" else len(data)
        print(f"{args.output}: {what} with {count} nodes")
    else:
        sys.stdout.write(text)
    return 0


# -- nodes --------------------------------------------------------------------------------------------------
def cmd_nodes(args: argparse.Namespace) -> int:
    from nodeforge.core.registry import default_registry

    registry = default_registry()
    for failure in registry.failures:
        print(f"warning: {failure}", file=sys.stderr)
    wanted = list(getattr(args, "types", None) or [])
    unknown = [name for name in wanted if name not in registry]
    if unknown:
        raise UsageError(f"unknown node type {unknown[0]!r}: `nodeforge nodes` lists them all")
    if args.json:
        chosen = [spec for spec in registry if not wanted or spec.type in wanted]
        json.dump([spec.to_json() for spec in chosen], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    for category, specs in sorted(registry.categories().items()):
        specs = [spec for spec in specs if not wanted or spec.type in wanted]
        if specs:
            print(f"{category}:")
        for spec in specs:
            _print_node(spec)
    return 0


def _print_node(spec: Any) -> None:
    def said(description: str) -> str:
        return f"  - {description}" if description else ""

    print(f"  {spec.type}" + (f" ({spec.title})" if spec.title != spec.type else ""))
    if spec.description:
        print(f"      {spec.description}")
    for port in spec.inputs:
        print(f"      in   {port.name}: {port.type}{' (optional)' if port.optional else ''}{said(port.description)}")
    for param in spec.params:
        print(f"      param {param.name}: {_describe_param(param)}{said(param.description)}")
    for port in spec.outputs:
        print(f"      out  {port.name}: {port.type}{said(port.description)}")


def _describe_param(param: Any) -> str:
    text = param.kind.value
    if param.choices is not None and param.file is None:
        text += " [" + ", ".join(param.choice_list()) + "]"
    elif param.file is not None:
        text += f" ({param.file.value} name or path)"
    bounds = [f"{k} {getattr(param, k)}" for k in ("min", "max", "multiple_of") if getattr(param, k) is not None]
    if bounds:
        text += " (" + ", ".join(bounds) + ")"
    return text + f" = {param.default!r}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
