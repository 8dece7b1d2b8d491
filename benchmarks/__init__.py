"""Benchmarks for the watcher: one poll cycle against the limit of a bare fetch loop,
follow-up requests, history, alert bursts and end-to-end latency. Run `benchmarks/run.py`.
"""
