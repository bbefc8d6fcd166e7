"""README's recipes are the files the tests run, word for word."""

from __future__ import annotations

from vgw_lab.netlab import ROOT


def test_readme_carries_the_own_bridge_recipe_verbatim():
    recipe = (ROOT / "docs" / "recipe-own-bridge.sh").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"```sh\n{recipe}```" in readme, \
        "README's own-bridge block differs from docs/recipe-own-bridge.sh"


def test_readme_keeps_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "./run.sh lab     #" in readme and "./run.sh test    #" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./run.sh test" in ci
