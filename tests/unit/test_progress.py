"""Progress bars: on a terminal only, never in CI or on other ranks; rounded numbers and durations for logs."""

import io
import sys

import pytest

from sempos import progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_auto_means_a_terminal_outside_ci(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert progress.wanted({"progress": "auto"}) and progress.wanted({})
    monkeypatch.setenv("CI", "1")
    assert not progress.wanted({"progress": "auto"})
    assert progress.wanted({"progress": True}) and not progress.wanted({"progress": False})
    monkeypatch.setenv("RANK", "1")
    assert not progress.wanted({"progress": True})  # one bar per job, from the main process
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delenv("CI")
    monkeypatch.delenv("RANK")
    assert not progress.wanted({"progress": "auto"})  # a log file, not a terminal


@pytest.mark.parametrize("on", [False, True])
def test_bar_passes_items_through_and_is_silent_when_off(monkeypatch, on):
    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    progress.configure(on)
    try:
        assert list(progress.bar(range(5), desc="linear probe", unit="epoch")) == [0, 1, 2, 3, 4]
    finally:
        progress.configure(False)
    assert ("linear probe" in err.getvalue()) == on
    if on:
        assert "0/5" in err.getvalue()  # the total is known, so tqdm shows the ETA


def test_durations_and_numbers_are_rounded_for_logs():
    assert progress.duration(3.14159) == "3.1 s"
    assert progress.duration(42.4) == "42 s"
    assert progress.duration(185) == "3 min 05 s"
    assert progress.duration(7620) == "2 h 07 min"
    assert progress.rounded({"loss": 6.123456789, "epoch": 3, "note": "x"}) == {"loss": 6.1235, "epoch": 3, "note": "x"}
