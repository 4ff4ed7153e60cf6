"""Tests of the optional integrations (jupyter_taskstream.integrations)."""
