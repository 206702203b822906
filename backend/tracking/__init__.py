"""The only code that writes the tracking, event and reference configuration tables.

Stages call named functions (`start`, `record_detection`, `mark_loaded`, `finish_failed`,
`record_move`, ...) instead of writing rows themselves; statuses are `Status` values.
"""

from backend.tracking.claims import cancel_requested, close_orphan, renew, reopen_unmoved, request_cancel
from backend.tracking.events import add_event, defer, event, flush, pending, to_json, update, utcnow
from backend.tracking.rows import (
    OWNER,
    TrackingRow,
    claim_key,
    decode_types,
    detection_of,
    encode_types,
    find_by_claim,
    finish_failed,
    get,
    mark_loaded,
    probe_write,
    record_detection,
    record_move,
    recorded_types,
    release_replaced_keys,
    start,
    types_of_load,
    upsert_reference_cfg,
)
from backend.tracking.status import Status

__all__ = [
    "OWNER",
    "Status",
    "TrackingRow",
    "add_event",
    "cancel_requested",
    "claim_key",
    "close_orphan",
    "decode_types",
    "defer",
    "detection_of",
    "encode_types",
    "event",
    "find_by_claim",
    "finish_failed",
    "flush",
    "get",
    "mark_loaded",
    "pending",
    "probe_write",
    "record_detection",
    "record_move",
    "recorded_types",
    "release_replaced_keys",
    "renew",
    "reopen_unmoved",
    "request_cancel",
    "start",
    "to_json",
    "types_of_load",
    "update",
    "upsert_reference_cfg",
    "utcnow",
]
