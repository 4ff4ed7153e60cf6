"""The jupyter_taskstream benchmark suite: `python -m benchmarks [--quick] [--cases 4,5]`.

Each case starts what it measures in its own processes on 127.0.0.1 (a real jupyter server
with the extension, the peer server, client processes, kernels), runs a warm-up and then at
least five measured runs, and reports medians with min/max next to a peer measured in the
same run. Results go to ``benchmarks/results.json`` and ``benchmarks/RESULTS.md``.
"""
