"""The versioned event schema: what one session event is, on disk and on the wire.

Every event is a flat JSON object ``{"v": 1, "seq": int, "ts": float, "kind": str, ...fields}``.
``seq`` counts 0, 1, 2, ... within a session; ``ts`` is unix time. Kinds and their fields:

===========  ==========================================================================
status       ``state`` (one of STATES), optional ``message``
phase        ``name`` ("original", "unlearn", "eval", ...), optional ``request`` (int)
step         ``step`` (int), ``phase`` (str), ``losses`` (term -> float, has "total"),
             ``lr`` (float), optional ``request``, optional ``memory_mb`` (peak so far: CUDA
             allocated, or the process's resident set on the CPU), optional ``of`` (the steps the
             phase plans; none under a time budget; a kept-best or --stop-if stop may end it sooner)
eval         ``step``, ``phase``, ``split`` ("before", "after", "step", ...), ``metrics``
             (flat name -> float, e.g. "df_dr_auc", "test.r_mean"), optional ``request``, optional ``metric``
             (split "history": the metric its r1..ri score, e.g. "df.r_mean", "forget"), optional
             ``evaluation`` ("sample": Df was a sample of the units forgotten so far, `--eval-sample`)
log          ``level``, ``message``
artifact     ``name``, ``path``
device       ``devices``: one entry per device the run uses, ``{"name": str, "util": percent,
             "mem_used_mb": float, "mem_total_mb": float}``, the three numbers None where not
             measured (the CPU); once at the start, then every few seconds on CUDA
===========  ==========================================================================

Readers check ``v`` (and the session file's ``schema``) and refuse what they do not know.
"""
from __future__ import annotations

from typing import Any, Mapping

SCHEMA_VERSION = 1

STATES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE_STATES = frozenset({"queued", "running"})
TERMINAL_STATES = frozenset({"finished", "failed", "cancelled", "interrupted"})

# kind -> (required fields with their types, optional fields with their types)
_NUM = (int, float)
KINDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "status": ({"state": str}, {"message": (str, type(None))}),
    "phase": ({"name": str}, {"request": (int, type(None))}),
    "step": ({"step": int, "phase": str, "losses": dict, "lr": _NUM},
             {"request": (int, type(None)), "memory_mb": _NUM, "of": int}),
    "eval": ({"step": int, "phase": str, "split": str, "metrics": dict},
             {"request": (int, type(None)), "metric": str, "evaluation": str}),  # metric: what a "history" row's r1..ri score
    "log": ({"level": str, "message": str}, {}),
    "artifact": ({"name": str, "path": str}, {}),
    "device": ({"devices": list}, {}),
}
DEVICE_NUMBERS = ("util", "mem_used_mb", "mem_total_mb")
RESERVED = ("v", "seq", "ts", "kind")


class SchemaMismatch(RuntimeError):
    """A file or event written with a schema version this code does not read."""


def check_fields(kind: str, fields: Mapping[str, Any]) -> None:
    """Raise ValueError (one line) when ``fields`` is not a valid event of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(KINDS)}")
    required, optional = KINDS[kind]
    for name in RESERVED:
        if name in fields:
            raise ValueError(f"event field {name!r} is set by the writer, not by the caller")
    for name, typ in required.items():
        if name not in fields:
            raise ValueError(f"{kind} event needs field {name!r}")
        value = fields[name]
        if isinstance(value, bool) or not isinstance(value, typ):
            if not _number_like(value, typ):
                raise ValueError(f"{kind} event field {name!r} has type {type(value).__name__}")
    for name, typ in optional.items():
        if name in fields and not isinstance(fields[name], typ) and not _number_like(fields[name], typ):
            raise ValueError(f"{kind} event field {name!r} has type {type(fields[name]).__name__}")
    if kind == "status" and fields["state"] not in STATES:
        raise ValueError(f"unknown state {fields['state']!r}; expected one of {', '.join(STATES)}")
    if kind == "step" and "total" not in fields["losses"]:
        raise ValueError("step event losses need a 'total' term")
    if kind == "device":
        _check_devices(fields["devices"])


def _check_devices(devices: list) -> None:
    for item in devices:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError("device event devices need a 'name' each, e.g. {\"name\": \"cpu\", \"util\": null, ...}")
        for name in DEVICE_NUMBERS:
            if name not in item:
                raise ValueError(f"device event entry {item['name']!r} needs {name!r} (a number, or null where "
                                 "not measured)")
            value = item[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, _NUM)):
                raise ValueError(f"device event field {name!r} of {item['name']!r} must be a number or null, "
                                 f"not {type(value).__name__}")


def _number_like(value: Any, typ: Any) -> bool:
    # numpy / torch scalars: accepted where a number is expected, converted when serialised
    wants_number = typ in (int, _NUM) or (isinstance(typ, tuple) and int in typ)
    return wants_number and hasattr(value, "item") and not hasattr(value, "__len__")


def check_event(event: Mapping[str, Any]) -> None:
    """Validate a complete event (as read back from a file or the wire)."""
    v = event.get("v")
    if v != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"event schema version {v!r} is not supported (this mmul-workbench reads version "
            f"{SCHEMA_VERSION}); use the mmul-workbench release that wrote it"
        )
    if not isinstance(event.get("seq"), int) or not isinstance(event.get("ts"), _NUM):
        raise ValueError("event needs an integer 'seq' and a numeric 'ts'")
    fields = {k: val for k, val in event.items() if k not in RESERVED}
    check_fields(str(event.get("kind")), fields)
