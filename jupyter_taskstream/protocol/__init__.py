"""The contract between the hub (server side) and the runtime (kernel side): written once here.

Both sides import this package and nothing of each other. `wire`: the environment names a
kernel reads, the publish-secret header, the protocol version every batch carries, event
types, statuses (the terminal set and the status a view displays). `validate`: what a
producer may publish and a user may post. `state`: the snapshot shape (`TaskState`, child
bars included) and the rate/ETA estimator. `locate`: how a process outside Jupyter finds a
server (URL forms, the runtime directory's ``jpserver-*.json``), for the client and scripts.
`batchbody`: a publish batch's body on the wire (JSON, or a text batch with the log lines
outside the JSON), and `JoinedLines`, the kernel's form of a run of lines until then.

Pure Python on purpose: no Jupyter, tornado or IPython imports, so both sides (and any
other producer) agree on one definition. Times are epoch seconds passed in by the caller.
"""

from __future__ import annotations

from .batchbody import (
    JSON_TYPE,
    PROTOCOL_HEADER,
    TEXT_BATCH_TYPE,
    JoinedLines,
    decode_text_batch,
    encode_batch,
    joined,
    line_chars,
)
from .state import RateEstimator, TaskState, eta, eta_shown, rate_shown
from .validate import (
    BAR_FIELDS,
    MAX_BARS,
    SURROGATE_ESCAPE,
    check_count,
    check_fields,
    check_unit,
    lone_surrogate_path,
    replace_lone_surrogates,
    validate_bars,
    validate_event,
    validate_name,
    validate_task_id,
    validate_task_spec,
)
from .wire import (
    DISPLAY_STATUSES,
    ENV_DISCOVER,
    ENV_PARENT,
    ENV_SECRET,
    ENV_TOKEN,
    ENV_URL,
    LOG_STREAMS,
    PROTOCOL_VERSION,
    PUBLISH_SOCKET_PATH,
    PUBLISHED_EVENT_TYPES,
    SECRET_HEADER,
    STATUSES,
    TERMINAL_STATUSES,
    display_status,
    dropped_marker,
    iso_time,
    new_task_id,
)

__all__ = [
    "BAR_FIELDS", "DISPLAY_STATUSES", "JSON_TYPE", "PROTOCOL_HEADER", "TEXT_BATCH_TYPE", "JoinedLines", "decode_text_batch", "encode_batch", "joined", "line_chars", "ENV_DISCOVER", "ENV_PARENT", "ENV_SECRET", "ENV_TOKEN", "ENV_URL", "LOG_STREAMS", "MAX_BARS", "PROTOCOL_VERSION",
    "PUBLISH_SOCKET_PATH", "PUBLISHED_EVENT_TYPES", "SECRET_HEADER", "STATUSES", "SURROGATE_ESCAPE", "TERMINAL_STATUSES", "RateEstimator",
    "TaskState", "check_count", "rate_shown", "check_fields", "check_unit", "display_status", "dropped_marker", "eta", "eta_shown", "iso_time",
    "lone_surrogate_path", "new_task_id", "replace_lone_surrogates", "validate_bars", "validate_event",
    "validate_name", "validate_task_id", "validate_task_spec",
]  # fmt: skip
