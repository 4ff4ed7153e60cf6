"""Tests of the kernel side (jupyter_taskstream/kernel/): runtime, task, capture, publisher, adapters."""
