"""`watcher demo` end to end, in process at 4 times its speed: the story against the
simulator, the real daemon, the terminal receiver; what it prints is what is checked."""

from __future__ import annotations

import re

import pytest

from watcher import demo


def alerts(printed: str) -> list[str]:
    """The alert lines the demo printed: `[ 12.3s] KIND title`."""
    return [m.group(1) for m in re.finditer(r"^\[\s*[\d.]+s\] (\S+ .*)$", printed, re.M)]


async def test_the_demo_tells_its_story_with_a_regression_a_recovery_and_a_flake(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every beat of the story arrives, among them one `regressed` (Checkout onLoad about
    50% slower) and then its `improved`, each once."""
    assert await demo.run(speed=4, log_level=None) == 0  # the suite's logging
    shown = alerts(capsys.readouterr().out)
    slower = [a for a in shown if "slower than its baseline" in a]
    back = [a for a in shown if "back to its baseline" in a]
    assert len(slower) == 1, shown
    assert re.match(r"WARNING .*Checkout onLoad (4\d|5\d)% slower than its baseline", slower[0])
    assert len(back) == 1, shown
    assert back[0].startswith("SUCCESS ")
    assert shown.index(slower[0]) < shown.index(back[0])
    assert any("Nightly checkout failed 2 times in a row" in a for a in shown), shown
    assert any("is green again" in a for a in shown), shown
    assert any("Site crawl expired" in a for a in shown), shown
    assert any("was cancelled by" in a for a in shown), shown
    # the flaky beat: the failure held, its rerun passed, one flaky line and no failure
    landing = [a for a in shown if "Mobile landing" in a]
    assert landing == ["INFO Mobile landing failed, then passed on a rerun"], shown
