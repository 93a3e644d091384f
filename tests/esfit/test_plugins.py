"""esfit.plugins: importing the modules a user names, with errors that say which and why."""

from __future__ import annotations

import sys

import pytest

from esfit.plugins import PluginError, import_plugin, import_plugins


def test_a_file_is_imported_once_and_files_of_one_name_do_not_collide(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "comp.py").write_text("import itertools\nCOUNT = next(itertools.count())\nWHO = 'a'\n")
    (tmp_path / "b" / "comp.py").write_text("WHO = 'b'\n")
    first = import_plugin(str(tmp_path / "a" / "comp.py"))
    assert import_plugin(str(tmp_path / "a" / ".." / "a" / "comp.py")) is first  # same file, not run again
    second = import_plugins([str(tmp_path / "b" / "comp.py")])[0]
    assert (first.WHO, second.WHO) == ("a", "b")


def test_a_module_name_is_imported(tmp_path, monkeypatch):
    (tmp_path / "esfit_test_plugin_mod.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_plugins("esfit_test_plugin_mod")[0].VALUE == 42  # a lone string is one plugin
    sys.modules.pop("esfit_test_plugin_mod", None)


def test_a_plugin_that_raises_names_its_line_and_can_be_fixed(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("X = 1\nraise ValueError('bad weight')\n")
    with pytest.raises(PluginError, match=r"^--plugins .*broken\.py: importing it raised ValueError: bad weight at "
                                          r".*broken\.py:2; fix the plugin file") as info:
        import_plugin(str(plugin), option="--plugins")
    assert info.value.plugin == str(plugin)
    plugin.write_text("X = 2\n")
    assert import_plugin(str(plugin)).X == 2  # the failed import left nothing behind


@pytest.mark.parametrize(("plugin", "message"), [
    ("no_such_module_xyz", r"plugins no_such_module_xyz: no module of that name on the Python path"),
    ("some/dir/module", r"looks like a path but does not end in \.py"),
    ("", r"is not a plugin"),
])
def test_bad_names_are_clear(plugin, message):
    with pytest.raises(PluginError, match=message):
        import_plugin(plugin)


def test_missing_files_folders_and_dependencies_are_clear(tmp_path, monkeypatch):
    with pytest.raises(PluginError, match=r"nothere\.py: does not exist; give the path of a \.py file"):
        import_plugin(str(tmp_path / "nothere.py"))
    (tmp_path / "pkg.py").mkdir()
    with pytest.raises(PluginError, match=r"pkg\.py: is a folder"):
        import_plugin(str(tmp_path / "pkg.py"))
    (tmp_path / "esfit_test_needs_dep.py").write_text("import esfit_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"it imports 'esfit_no_such_dependency', which is not installed at "
                                          r".*esfit_test_needs_dep\.py:1"):
        import_plugin("esfit_test_needs_dep")
