"""The cycle collector is paused for bulk work and always comes back on."""

from __future__ import annotations

import gc

import pytest

from service import collector


def test_paused_for_the_work_and_on_again_after_it_even_when_it_fails():
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # nested: the outer one turns it back on
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("a tick that fails")
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off():
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
