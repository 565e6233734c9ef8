"""Typed child jobs, one way in: a frozen dataclass per job, JSON on the child's stdin.

Parent: ``child.run_child(module, ["child"], job=SomeJob(...))`` writes the job as JSON (:func:`to_json`).
Child: ``python -m MODULE child < job.json``; the module's ``main`` is ``jobs.child_entry(SomeJob, measure, argv)``,
which reads the job into its dataclass (a missing or unknown field, or no stdin: one line on stderr, exit 2),
points fd 1 at stderr (:func:`overhead.harness.child.claim_stdout`) and calls ``measure(job, proto)``.
"""
from __future__ import annotations

import dataclasses
import json
import sys

from overhead.harness.child import claim_stdout


class JobError(ValueError):
    """A job that does not fit its dataclass; one line naming the field."""


def to_json(job) -> str:
    """The job as one JSON object (tuples become lists)."""
    if not dataclasses.is_dataclass(job):
        raise TypeError(f"a child job is a dataclass instance, got {type(job).__name__}")
    return json.dumps(dataclasses.asdict(job))


def from_json(cls, text: str):
    """`cls` from the JSON object `text`; list fields of tuple defaults come back as tuples."""
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise JobError(f"{cls.__name__}: the job is not JSON ({exc})") from None
    if not isinstance(values, dict):
        raise JobError(f"{cls.__name__}: the job must be a JSON object, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise JobError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    missing = [n for n, f in fields.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise JobError(f"{cls.__name__}: missing field(s) {', '.join(missing)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def child_entry(cls, measure, argv=None, *, command: str = "child", claim: bool = True) -> int:
    """The one child entry point: ``MODULE child`` with a `cls` job on stdin -> ``measure(job, proto)``.

    `proto` is the protocol stream (the original stdout; `claim=False` leaves stdout as it is)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    module = getattr(sys.modules.get("__main__"), "__spec__", None)
    usage = f"usage: python -m {module.name if module else 'MODULE'} {command} < job.json  (a {cls.__name__} as JSON)"
    try:
        if argv != [command] or sys.stdin is None or sys.stdin.isatty():
            raise JobError("no job on stdin")
        job = from_json(cls, sys.stdin.read())
    except (JobError, OSError) as exc:
        print(f"error: {exc}; {usage}", file=sys.stderr)
        return 2
    proto = claim_stdout() if claim else sys.stdout
    return measure(job, proto)
