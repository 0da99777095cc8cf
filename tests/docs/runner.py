"""Running one document's commands in order against a `fleetmatch up`, as a reader would.

What the test changes in a command before bash runs it, and why:

- The documented default addresses (allocator 9180, matchmaker 9190, metrics 9100, dashboard 9170, a game server
  at 127.0.0.1 7000) become this stack's: the machine's real defaults may be taken.
- Placeholders (``<ticket-id>``, ``<gameserver>``) become values of the running stack or of an
  earlier command of the same document (``PLACEHOLDERS``); an unknown one is a failure.
- ``curl`` gets ``--fail-with-body``: curl exits 0 on an HTTP error otherwise.

``$TOKEN`` is in the environment (the allocator token ``fleetmatch up`` printed).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.docs.markdown import Command
from tests.docs.stack import DocStack

COMMAND_TIMEOUT = 60.0  # the longest documented wait is `ticket create --wait 30`
_PLACEHOLDER = re.compile(r"<[a-z][a-z0-9-]*>")
_TICKET_ID = re.compile(r"\b[a-z0-9][a-z0-9-]*\.[0-9a-hjkmnp-tv-z]{26}\b")


class Unresolved(Exception):
    """A command names something this run cannot supply."""


def _last_ticket(run: DocRun) -> str:
    for output in reversed(run.outputs):
        found = _TICKET_ID.findall(output)
        if found:
            return str(found[-1])
    raise Unresolved("<ticket-id>: no earlier command of this document printed a ticket id")


def _a_gameserver(run: DocRun) -> str:
    names = run.stack.ready_names()
    if not names:
        raise Unresolved("<gameserver>: the demo fleet has no Ready server")
    return names[0]


PLACEHOLDERS: dict[str, Callable[[DocRun], str]] = {
    "<ticket-id>": _last_ticket,  # the ticket an earlier command of the same document opened
    "<gameserver>": _a_gameserver,  # a Ready server of the demo fleet
}


def _clip(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def shell(text: str) -> list[str]:
    return ["bash", "-c", "set -o pipefail\n" + text]


@dataclass
class DocRun:
    """One document's commands, in order; failures are collected, not raised, to report them all."""

    stack: DocStack
    outputs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    background: list[tuple[Command, str, subprocess.Popen[str]]] = field(default_factory=list)

    def as_run(self, command: Command) -> str:
        text = command.text
        info = self.stack.info
        addresses: list[tuple[str, Callable[[], str]]] = [
            (r"http://127\.0\.0\.1:9180", lambda: info["allocator_url"]),
            (r"http://127\.0\.0\.1:9190", lambda: info["matchmaker_url"]),
            (r"http://127\.0\.0\.1:9100", lambda: info["metrics_url"].removesuffix("/metrics")),
            (r"http://127\.0\.0\.1:9170", lambda: info["dashboard_url"].removesuffix("/dashboard/")),
            (r"127\.0\.0\.1 7000\b", lambda: "{} {}".format(*self.stack.ready_servers()[0])),
        ]
        for pattern, value in addresses:
            if re.search(pattern, text):
                text = re.sub(pattern, value(), text)
        for name in _PLACEHOLDER.findall(text):
            if name not in PLACEHOLDERS:
                raise Unresolved(f"{name}: not a known placeholder ({', '.join(PLACEHOLDERS)}); add it to PLACEHOLDERS")
            text = text.replace(name, PLACEHOLDERS[name](self))
        if text.startswith("curl "):
            text = text.replace("curl ", "curl --fail-with-body ", 1)
        return text

    def fail(self, command: Command, ran: str, status: int | str, stdout: str, stderr: str, hint: str = "") -> None:
        self.failures.append(
            f"{command.where}: {command.text}\n  ran: {ran}\n"
            f"  exit {status} (the doc expects {command.expected_status}){hint}\n"
            f"  stdout: {_clip(stdout)}\n  stderr: {_clip(stderr)}"
        )

    def run(self, command: Command) -> None:
        try:
            ran = self.as_run(command)
        except Unresolved as exc:
            self.failures.append(f"{command.where}: {command.text}\n  cannot run: {exc}")
            return
        cwd, env = self.stack.workdir, self.stack.env
        if command.background:
            proc = subprocess.Popen(
                shell(ran), cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            self.background.append((command, ran, proc))
            return
        try:
            done = subprocess.run(
                shell(ran), cwd=cwd, env=env, text=True, capture_output=True, timeout=COMMAND_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            hint = "\n  (a command that runs until stopped belongs in NOT_RUN, with the reason)"
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            self.fail(command, ran, f"none: still running after {COMMAND_TIMEOUT:g} s", out, "", hint)
            return
        self.outputs.append(done.stdout)
        if done.returncode != command.expected_status:
            self.fail(command, ran, done.returncode, done.stdout, done.stderr)

    def finish(self) -> None:
        """Wait for the commands started in the background; kill those that never end."""
        for command, ran, proc in self.background:
            try:
                out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                self.fail(command, ran, "none: never finished", out, err)
                continue
            self.outputs.append(out)
            if proc.returncode != command.expected_status:
                self.fail(command, ran, proc.returncode, out, err)
        self.background.clear()

    def close(self) -> None:
        for _, _, proc in self.background:
            proc.kill()
            proc.communicate()
