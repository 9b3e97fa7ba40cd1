"""Driftwatch's benchmarks: the numbers of issue 8, measured on loopback against the
sandbox's fakes, each beside a baseline measured in the same run.

``python -m bench`` runs B1–B7 and writes ``BENCHMARKS.md``; ``--quick`` runs small
sizes (CI); ``--only B1,B3`` picks. Every run of a benchmark is a fresh Python process
(:mod:`bench.worker`), so its peak RSS is its own; B1's fakes live in yet another
process (:mod:`bench.fakes`), so the product's memory is measured without them.
"""
