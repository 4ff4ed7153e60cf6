"""Tests of the hub (server side): most against a real jupyter server over real HTTP."""
