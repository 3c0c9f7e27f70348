"""A training run for the Train dialog: the command line's own trainer in a separate process.

The dialog builds the argv of `nodeforge train-lora` / `train-embedding` (`build_argv`) and a
`TrainJob` runs it with QProcess (`python -m nodeforge ...`, or the packaged app's executable), so the canvas stays usable, a crash
of the training cannot take the editor with it, and what runs is exactly what the command line
runs. The job reads the trainer's stderr as it comes: its progress bar (`session.PROGRESS`), its
sample lines (`session.SAMPLE`) and its one-line `error:`. Cancel sends SIGTERM: the trainer ends
the step under way, writes its --work checkpoint and exits (`session.Session`); a process that has
not gone after `KILL_AFTER_MS` is killed (the last periodic checkpoint stays).

A method is a row of `METHODS`: the command, its extra flags and the kind of file it writes; what a
command needs besides the shared settings (DreamBooth's instance and class prompts) is built from
`TrainSettings` in `build_argv`. A new trainer is a new row there and its fields here.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from nodeforge.core.models import FileKind
from nodeforge.training.session import CHECKPOINT, PROGRESS, SAMPLE

KILL_AFTER_MS = 20_000
ERROR = re.compile(r"^error: (.*)$")
STOPPED = re.compile(r"^[\w-]+: stopped at step (\d+)")
SAID = re.compile(r"^train-[\w-]+: ")


@dataclass(frozen=True)
class Method:
    label: str
    command: str                 # the nodeforge sub-command
    flags: tuple[str, ...]       # what it adds to the command
    kind: FileKind               # the model list the result appears in
    tip: str


METHODS = {
    "lora": Method("LoRA", "train-lora", (), FileKind.LORA,
                   "A low-rank update of the UNet's attention layers; load it with the LoRA node"),
    "dora": Method("DoRA", "train-lora", ("--dora",), FileKind.LORA,
                   "Weight-decomposed LoRA (a magnitude per output besides the low-rank direction); "
                   "often closer to full fine-tuning at the same rank"),
    "dreambooth": Method("DreamBooth", "train-dreambooth", (), FileKind.LORA,
                         "A new subject from a handful of pictures, as a LoRA: every picture trains with the "
                         "instance prompt (a rare token: 'a sks shape'; captions are not used); class pictures "
                         "the base draws from the class prompt keep the class from drifting (prior "
                         "preservation)"),
    "embedding": Method("Embedding", "train-embedding", (), FileKind.EMBEDDING,
                        "Textual inversion: new word vectors learned from the images, used in a prompt as "
                        "embedding:NAME; captions are not used (the prompt is 'a NAME')"),
}


@dataclass
class TrainSettings:
    method: str
    images: Path
    base: Path
    name: str
    out: Path
    work: Path
    steps: int = 200
    rank: int = 4
    lr: float = 1e-3
    batch: int = 4
    resolution: int = 64
    sample_prompt: str = ""
    sample_seed: int = 0
    sample_every: int = 25
    instance_prompt: str = "a sks shape"     # DreamBooth: the subject's rare token and class
    class_prompt: str = "a shape"            # DreamBooth: the class alone ('' : no prior preservation)
    class_images: int = 50
    prior_weight: float = 1.0
    class_dir: Path | None = None            # DreamBooth: where the drawn class pictures are kept
    extra: list[str] = field(default_factory=list)   # more flags, as typed (advanced)


def build_argv(s: TrainSettings) -> list[str]:
    """The trainer's command-line arguments (after `nodeforge`) for the settings."""
    method = METHODS[s.method]
    argv = [method.command]
    if method.command == "train-embedding":
        argv += ["--images-dir", str(s.images), "--resolution", str(s.resolution)]
    elif method.command == "train-dreambooth":
        argv += ["--instance-dir", str(s.images), "--instance-prompt", s.instance_prompt, "--rank", str(s.rank),
                 "--alpha", str(s.rank), "--resolution", str(s.resolution), *_prior(s)]
    else:
        argv += [str(s.images), "--rank", str(s.rank), "--alpha", str(s.rank), "--resolution", str(s.resolution)]
    argv += ["--base", str(s.base), "--out", str(s.out), "--steps", str(s.steps), "--lr", f"{s.lr:g}",
             "--batch", str(s.batch), "--work", str(s.work), "--save-every", str(max(1, s.sample_every or 100)),
             "--threads", str(max(1, (os.cpu_count() or 2) - 1)), *method.flags, *s.extra]
    if s.sample_every:
        argv += ["--sample-every", str(s.sample_every), "--sample-prompt", s.sample_prompt,
                 "--sample-seed", str(s.sample_seed)]
    return argv


def command(argv: list[str]) -> tuple[str, list[str]]:
    """The program and arguments that run `nodeforge ARGV`: this Python with `-m nodeforge`, or the
    packaged app's own executable (PyInstaller sets sys.frozen), whose entry point is the same CLI."""
    if getattr(sys, "frozen", False):
        return sys.executable, list(argv)
    return sys.executable, ["-m", "nodeforge", *argv]


def _prior(s: TrainSettings) -> list[str]:
    """DreamBooth's prior preservation: the class prompt, its pictures and their weight (none without a class prompt)."""
    if not s.class_prompt.strip() or s.prior_weight == 0:
        return ["--prior-weight", "0"]
    return ["--class-prompt", s.class_prompt, "--class-images", str(s.class_images), "--prior-weight",
            f"{s.prior_weight:g}", *(["--class-dir", str(s.class_dir)] if s.class_dir is not None else [])]


def has_checkpoint(work: Path) -> bool:
    return (work / CHECKPOINT).is_file()


class TrainJob(QObject):
    """One trainer process. `progressed(done, total, loss)`, `sampled(step, path)`, and
    `ended(state, message)` with state "done", "stopped" or "failed"."""

    progressed = Signal(int, int, float)
    sampled = Signal(int, str)
    said = Signal(str)           # the trainer's other lines ("drew class images 16/50", warnings)
    ended = Signal(str, str)

    def __init__(self, argv: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.argv = argv
        self.buffer = ""
        self.error = ""
        self.stopped_at: int | None = None
        self.cancelled = False
        self.lines: list[str] = []       # the trainer's output, for the dialog's log
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self.kill_timer = QTimer(self)
        self.kill_timer.setSingleShot(True)
        self.kill_timer.setInterval(KILL_AFTER_MS)
        self.kill_timer.timeout.connect(self.process.kill)

    def start(self) -> None:
        self.process.start(*command(self.argv))

    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """Ask the trainer to stop (it writes its checkpoint first); kill it if it does not go."""
        if not self.running():
            return
        self.cancelled = True
        self.process.terminate()
        self.kill_timer.start()

    def _read(self) -> None:
        self.buffer += bytes(self.process.readAllStandardOutput().data()).decode("utf-8", "replace")
        *done, self.buffer = re.split(r"[\r\n]", self.buffer)
        for line in done:
            self._line(line)
        if PROGRESS.search(self.buffer) and self.buffer.endswith("s "):   # the bar, written whole, no newline yet
            self._line(self.buffer)
            self.buffer = ""

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        progress = PROGRESS.search(line)
        if progress:
            self.progressed.emit(int(progress[1]), int(progress[2]), float(progress[3]))
            return
        self.lines.append(line)
        if sample := SAMPLE.match(line):
            self.sampled.emit(int(sample[1]), sample[2])
        elif error := ERROR.match(line):
            self.error = error[1]
        elif stopped := STOPPED.match(line):
            self.stopped_at = int(stopped[1])
        elif SAID.match(line):
            self.said.emit(line)

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self.kill_timer.stop()
        self._read()
        if self.buffer:
            self._line(self.buffer)
            self.buffer = ""
        if code == 0 and status == QProcess.ExitStatus.NormalExit:
            self.ended.emit("done", "")
        elif self.cancelled:
            where = f" at step {self.stopped_at}" if self.stopped_at is not None else ""
            self.ended.emit("stopped", f"Stopped{where}")
        else:
            tail = self.error or (self.lines[-1] if self.lines else f"the trainer exited with status {code}")
            self.ended.emit("failed", tail)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.ended.emit("failed", f"could not start {sys.executable} -m nodeforge: {self.process.errorString()}")
