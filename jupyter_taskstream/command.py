"""``jupyter taskstream``: a client subcommand (ls, watch, logs, ...), or a server with its dashboard.

Top-level wiring, like `api`: it chooses which side runs, so a subcommand never loads the
server (jupyter_server, tornado) and starting the server never loads the client's rich.
"""

from __future__ import annotations

import sys
from typing import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """The ``jupyter-taskstream`` entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    from .client.cli import is_client_command  # light: argument parsing only

    if is_client_command(args):
        from .client.cli import main as client_main

        client_main(args)
        return
    from .hub.app import main as serve

    serve(args)
