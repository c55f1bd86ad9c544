"""Build a throwaway project from a documentation page and replay it, as a newcomer would.

The page is read top to bottom; its fenced blocks are the steps:

* a ``python`` block whose first line is ``# <path>.py`` is that file, written exactly as
  shown (the comment line included); ``# <path>.py (add at the end)`` appends it instead
  (for ``settings.py``, which ``startproject`` created). Other python blocks are prose.
* a ``console`` block is a list of ``$ command`` lines, each followed by the output the page
  promises (up to the next ``$`` line or blank line; ``…`` stands for anything, as in
  :mod:`example.check_curls`). Every command runs in one bash session (so ``VAR=$(...)``,
  ``export`` and ``cd`` carry over) in the project directory, with this interpreter's
  ``bin`` first on ``PATH`` (``python`` and ``django-admin`` are the ones under test), and
  stdout and stderr together must match the promised output.
* ``bash`` blocks are install instructions: not run here (the package under test is already
  installed); :func:`install_lines` lets a test check what they name.

One command is not run verbatim: ``python manage.py runserver`` is started in the background
on a free port (``--noreload``, so there is one process to stop) and the page's
``http://127.0.0.1:8000`` becomes that port in the commands that follow.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from example.check_curls import DOC_BASE, matches

FILE_HEADER = re.compile(r"^# (?P<path>[\w./-]+\.py)(?P<rest>.*)$")
APPEND = "(add at the end)"
RUNSERVER = "python manage.py runserver"


@dataclass
class FileStep:
    line: int
    path: str
    content: str
    append: bool


@dataclass
class CommandStep:
    line: int
    command: str
    expected: str


def blocks(markdown: str) -> Iterator[tuple[int, str, list[str]]]:
    """``(line number, language, lines)`` of every fenced block, in order."""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\w*)", lines[i])
        if not match:
            i += 1
            continue
        start, language, body = i + 1, match.group(1), []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        yield start, language, body


def steps(markdown: str) -> list[FileStep | CommandStep]:
    """The page's files and commands, in page order."""
    found: list[FileStep | CommandStep] = []
    for start, language, body in blocks(markdown):
        if language == "python" and body and (header := FILE_HEADER.match(body[0])):
            content = "\n".join(body) + "\n"
            found.append(FileStep(start, header["path"], content, APPEND in header["rest"]))
        elif language == "console":
            i = 0
            while i < len(body):
                if not body[i].startswith("$ "):
                    i += 1
                    continue
                line, command = start + i + 1, body[i][2:]
                i += 1
                output: list[str] = []
                while i < len(body) and body[i].strip() and not body[i].startswith("$ "):
                    output.append(body[i].rstrip())
                    i += 1
                found.append(CommandStep(line, command, "\n".join(output)))
    return found


def install_lines(markdown: str) -> list[str]:
    """The ``pip install`` lines of the page's ``bash`` blocks."""
    return [
        line.strip()
        for _, language, body in blocks(markdown)
        if language == "bash"
        for line in body
        if line.strip().startswith("pip install")
    ]


class Shell:
    """One bash session; each command is sourced from a file with stdin from /dev/null, so a
    command that reads stdin (without its own redirection) cannot swallow the next one."""

    def __init__(self, cwd: Path, scratch: Path, env: dict[str, str]) -> None:
        self.scratch = scratch
        self.count = 0
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, command: str, timeout: float = 120) -> str:
        self.count += 1
        script = self.scratch / f"step-{self.count:03d}.sh"
        script.write_text(command + "\n")
        marker = f"__arc_step_done_{uuid.uuid4().hex}__"
        self.proc.stdin.write(f". {shlex.quote(str(script))} </dev/null\nprintf '\\n{marker}\\n'\n")
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{command!r} still running after {timeout}s") from None
            if line is None:
                raise RuntimeError(f"the shell exited during {command!r}: {''.join(out)}")
            if line.strip() == marker:
                return "".join(out)
            out.append(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _normalise(output: str) -> str:
    return "\n".join(line.rstrip() for line in output.strip("\n").splitlines()).strip()


@dataclass
class Mismatch:
    line: int
    command: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return (
            f"line {self.line}: $ {self.command}\n--- the page promises:\n{self.expected}\n"
            f"--- it printed:\n{self.actual}"
        )


class Replay:
    """Builds the project of one page in ``workdir`` and runs its commands."""

    def __init__(self, workdir: Path) -> None:
        self.project = workdir / "project"
        self.project.mkdir()
        scratch = workdir / "steps"
        scratch.mkdir()
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH") and not key.startswith("PYTEST")
        }
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.env = env
        self.shell = Shell(self.project, scratch, env)
        self.server: subprocess.Popen | None = None
        self.base = DOC_BASE
        self.ran: list[str] = []

    def run(self, page_steps: list[FileStep | CommandStep]) -> list[Mismatch]:
        """Every step in order; returns the commands whose output is not what the page says
        (and stops at the first one: later steps build on it)."""
        for step in page_steps:
            if isinstance(step, FileStep):
                path = self.project / step.path
                assert path.parent.is_dir(), f"line {step.line}: no directory for {step.path}"
                if step.append:
                    assert path.exists(), f"line {step.line}: {step.path} to extend is missing"
                    with path.open("a") as f:
                        f.write("\n" + step.content)
                else:
                    path.write_text(step.content)
                continue
            if step.command.strip() == RUNSERVER:
                self.start_server()
                actual = ""
            else:
                actual = self.shell.run(step.command.replace(DOC_BASE, self.base))
            self.ran.append(step.command)
            if not matches(step.expected, _normalise(actual)):
                return [Mismatch(step.line, step.command, step.expected, _normalise(actual))]
        return []

    def start_server(self) -> None:
        port = _free_port()
        log = self.project.parent / "runserver.log"
        with log.open("w") as out:  # a file: an unread pipe would fill up and stall it
            self.server = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                cwd=self.project,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"runserver exited:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                time.sleep(0.1)
                continue
            self.base = f"http://127.0.0.1:{port}"
            return
        raise TimeoutError("runserver did not start listening within 60s")

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.shell.close()
