"""User plugins: Python modules that register fitness components (or loaders) before a command
builds its fitness.

A plugin is named by the user, never found by searching: a module name on the Python path
(``my_components``, ``mypkg.fitness``) or the path of a ``.py`` file. Importing it runs its code,
so nothing is imported that the user did not name (``--plugins`` of ``esfit score``, ``plugins``
of a training config).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

__all__ = ["PluginError", "import_plugin", "import_plugins"]


class PluginError(ValueError):
    """A plugin could not be imported; the message names the plugin, what went wrong and where,
    and the fix. ``plugin`` is the name or path as given."""

    def __init__(self, plugin: str, message: str):
        self.plugin = plugin
        super().__init__(message)


def _where(err: BaseException, path: Path | None) -> str:
    """`` at FILE:LINE`` of the innermost frame inside the plugin file (else the innermost frame)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.startswith("<") and Path(f.filename).resolve() != Path(__file__).resolve()]
    if path is not None:
        inside = [f for f in frames if Path(f.filename).resolve() == path]
        frames = inside or frames
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _module_name(path: Path) -> str:
    # one module per file: two plugins called components.py in different folders do not collide
    digest = hashlib.sha256(str(path).encode("utf-8", "surrogatepass")).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"esfit_plugin_{stem}_{digest}"


def _import_file(plugin: str, option: str) -> ModuleType:
    path = Path(plugin).resolve()
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise PluginError(plugin, f"{option} {plugin}: {reason}; give the path of a .py file (relative paths are "
                                  f"resolved from {os.getcwd()}) or a module name on the Python path")
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(plugin, f"{option} {plugin}: Python cannot load this file as a module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as err:
        del sys.modules[name]  # a fixed file imports again in the same process
        if not isinstance(err, Exception):
            raise
        raise PluginError(plugin, f"{option} {plugin}: importing it raised {type(err).__name__}: {err}"
                                  f"{_where(err, path)}; fix the plugin file") from err
    return module


def _import_module(plugin: str, option: str) -> ModuleType:
    try:
        return importlib.import_module(plugin)
    except ModuleNotFoundError as err:
        if err.name and plugin != err.name and not plugin.startswith(err.name + "."):
            # the plugin exists but imports something missing
            raise PluginError(plugin, f"{option} {plugin}: it imports {err.name!r}, which is not installed"
                                      f"{_where(err, None)}; install it or fix the plugin") from err
        raise PluginError(plugin, f"{option} {plugin}: no module of that name on the Python path; give a module "
                                  "name importable from here (set PYTHONPATH) or the path of a .py file") from None
    except Exception as err:
        raise PluginError(plugin, f"{option} {plugin}: importing it raised {type(err).__name__}: {err}"
                                  f"{_where(err, None)}; fix the plugin") from err


def import_plugin(plugin: str, *, option: str = "plugins") -> ModuleType:
    """Import one plugin (a module name, or a path ending in ``.py``) once per process; returns the
    module. Raises :class:`PluginError` naming ``option`` and the plugin."""
    if not isinstance(plugin, str) or not plugin.strip():
        raise PluginError(str(plugin), f"{option}: {plugin!r} is not a plugin; give a module name or a .py file path")
    if plugin.endswith(".py"):
        return _import_file(plugin, option)
    if os.sep in plugin or (os.altsep and os.altsep in plugin):
        raise PluginError(plugin, f"{option} {plugin}: looks like a path but does not end in .py; give the path of "
                                  "a .py file or a dotted module name")
    return _import_module(plugin, option)


def import_plugins(plugins: Iterable[str], *, option: str = "plugins") -> list[ModuleType]:
    """Import each plugin in order (see :func:`import_plugin`), so that the fitness components it
    registers exist before a fitness spec is built; returns the modules."""
    if isinstance(plugins, str):
        plugins = (plugins,)
    return [import_plugin(p, option=option) for p in plugins]
