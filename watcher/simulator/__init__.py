"""A simulated Eggplant Performance Analyzer jobs API, with fault knobs, for tests,
``watcher simulate`` and ``watcher demo``. See ``world`` for the state, ``server`` for
the HTTP behaviour, ``perf`` for test runs (noise, shifts), ``scenarios`` for
scripted changes and ``runner`` to run it.
"""

from watcher.simulator.perf import PerfModel
from watcher.simulator.runner import SimulatorHandle, running_simulator, serve
from watcher.simulator.scenarios import DEMO_END_STATE, SCENARIOS, Scenario
from watcher.simulator.server import CLIENT_ID, CLIENT_SECRET, REALM, make_app
from watcher.simulator.world import Faults, SimJob, World

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "DEMO_END_STATE",
    "REALM",
    "SCENARIOS",
    "Faults",
    "PerfModel",
    "Scenario",
    "SimJob",
    "SimulatorHandle",
    "World",
    "make_app",
    "running_simulator",
    "serve",
]
