"""The settings and what they may ask for: seeds, and the memory check's share."""

import json

import pytest

from linreg import data, limits, scratch
from linreg.cli import check_memory
from linreg.config import ConfigError, SCRATCH
from linreg.limits import MEMORY_SHARE

from .helpers import run_main


# config, memory --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [2**31 - 1, 2**31, 2**32 - 1])
def test_every_seed_numpy_takes_is_taken(seed):
    code, out, err = run_main(scratch, ["--epochs", "1", "--seed", str(seed), "--json"])
    assert code == 0, err
    assert json.loads(out)["config"]["seed"] == seed


def test_the_memory_check_refuses_past_its_share_of_the_room(monkeypatch):
    # limits' own names are replaced: the room is exactly what is given here.
    needed = data.memory_needed(SCRATCH)
    monkeypatch.setattr(limits, "memory_headroom", lambda available: (available, "available"))
    monkeypatch.setattr(limits, "available_memory", lambda: int(needed / MEMORY_SHARE) + 4096)
    check_memory(SCRATCH)  # just within the share
    monkeypatch.setattr(limits, "available_memory", lambda: int(needed / MEMORY_SHARE) - 4096)
    with pytest.raises(ConfigError, match=f"more than {MEMORY_SHARE:.0%} of the"):
        check_memory(SCRATCH)
