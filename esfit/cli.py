"""The `esfit` command. Subcommands are imported lazily so `esfit --help` stays fast and
`esfit extract` never imports torch."""

from __future__ import annotations

import importlib

import click

from esfit import __version__

# name -> "module:attribute" of a click command. Add one line per subcommand.
COMMANDS: dict[str, str] = {
    "convert": "esfit.commands.convert:convert",
    "demo": "esfit.commands.demo:demo",
    "extract": "esfit.commands.extract:extract",
    "generate": "esfit.commands.generate:generate",
    "score": "esfit.commands.score:score",
    "train": "esfit.commands.train:train",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module_name, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="esfit")
def main() -> None:
    """esfit: design fitness functions over extracted information, score corpora, and train
    language models against them with evolution strategies."""
