"""Front ends of kernel-side tasks: how a task shows where the user looks.

`auto` chooses one per task (like ``tqdm.auto``): `widget` (the notebook widget, with
``static/widget.js``), `console` (a text bar on a terminal) or nothing. `html_state` and
`meter` render a snapshot as static HTML and text, and `magic` is ``%%taskstream``. Views
consume task snapshots and may import ``kernel/``; the kernel side never imports them.
"""
