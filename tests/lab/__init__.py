"""Browser tests of the JupyterLab extension (src/): the Tasks panel, status item, toasts."""
