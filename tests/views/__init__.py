"""Tests of the views (jupyter_taskstream/views/): widget state, magic, starting tasks over HTTP, Lab."""
