"""Integrations with other libraries (Dask, ...): each lives in a module of its own here.

Nothing in this package imports an optional library at import time, and no integration
module is imported before the user's code uses the library it serves: `activation` turns
each one on when its library is imported (see there).
"""
