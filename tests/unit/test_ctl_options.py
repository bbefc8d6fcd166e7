"""The --vgw-* options: defaults that follow --vgw-db, and state vs seed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vgw_ryu.ryuapp import options


def conf(**kw):
    base = {"db": options.DEFAULT_DB, "log_file": None, "state": None, "seed": None}
    return SimpleNamespace(**{**base, **kw})


def test_firewall_log_defaults_beside_the_db():
    assert options.log_file(conf()) == "/var/lib/vgw_ryu/firewall.jsonl"
    assert options.log_file(conf(db="/tmp/x/state.db")) == "/tmp/x/firewall.jsonl"
    assert options.log_file(conf(log_file="/srv/fw.jsonl")) == "/srv/fw.jsonl"


def test_state_and_seed_modes():
    assert options.state_mode(conf()) is None
    assert options.state_mode(conf(state="s.yaml")) == ("state", "s.yaml")
    assert options.state_mode(conf(seed="x.yaml")) == ("seed", "x.yaml")
    with pytest.raises(SystemExit, match="--vgw-state and --vgw-seed exclude each other"):
        options.state_mode(conf(state="s.yaml", seed="x.yaml"))


def test_every_option_shows_its_default_in_the_help():
    for opt in options.OPTS:
        assert "(default: " in opt.help, opt.name
