"""watcher: alerts on Eggplant Web Performance Analyzer jobs that fail, expire or stall."""

__version__ = "0.1.0"
