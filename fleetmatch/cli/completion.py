"""``fleetmatch completion bash|zsh|fish``: the shell's completion script, from click's own.

Install it once, e.g. ``fleetmatch completion bash > ~/.local/share/bash-completion/completions/fleetmatch``
(zsh: into a directory of ``$fpath`` as ``_fleetmatch``; fish: ``~/.config/fish/completions/fleetmatch.fish``).
The script calls ``fleetmatch`` with ``_FLEETMATCH_COMPLETE`` set; click answers with the candidates.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_FLEETMATCH_COMPLETE"


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_cmd(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish); see `fleetmatch completion -h`.

    \b
    bash: fleetmatch completion bash > ~/.local/share/bash-completion/completions/fleetmatch
    zsh:  fleetmatch completion zsh > "${fpath[1]}/_fleetmatch"
    fish: fleetmatch completion fish > ~/.config/fish/completions/fleetmatch.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    root = ctx.find_root()
    click.echo(cls(root.command, {}, root.info_name or "fleetmatch", COMPLETE_VAR).source())
