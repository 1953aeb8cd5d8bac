"""The kernel's half of a graded test cell: it runs what the trusted side asks, and answers with data.

The grader loads this module into the student's kernel as ``__handwritten_agent__`` and sends each request as a
``user_expressions`` entry, ``__handwritten_agent__.serve("<wire text>")``. A request names what to run (the
student's object, by name or by a handle from an earlier answer; a function of the course; a builtin) and the
values to run it on. The agent runs it as ``_core.call`` runs student code (output captured, progress bars off,
the course's references in place), and answers ``(kind, value)`` as ``wire`` text: ``ok`` with the result (what
is not data stays here, as a handle), or ``raised``, ``not_implemented``, ``failed``, ``missing``.

Nothing here decides a score: the student's code shares this process and may change any of it, but all it can
change is the data the trusted side then judges.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import itertools

from .. import wire
from . import _core

__all__ = ["serve"]

_handles: dict[int, object] = {}
_numbers = itertools.count(1)


def _namespace() -> dict:
    try:
        return get_ipython().user_ns  # noqa: F821 (defined in every IPython kernel)
    except NameError:  # not in a kernel
        import __main__

        return vars(__main__)


class _Missing(Exception):
    pass


def _resolve(marker: dict, namespace: dict | None = None):
    (kind, body), = marker.items()
    if kind == "__global__":
        namespace = _namespace() if namespace is None else namespace
        if body not in namespace:
            raise _Missing(body)
        return namespace[body]
    if kind == "__handle__" and body in _handles:
        return _handles[body]
    if kind == "__builtin__" and isinstance(body, str):
        return getattr(builtins, body)
    if kind == "__course__" and isinstance(body, str) and body.startswith(("handwritten.", "torch", "math")):
        module, _, qualname = body.partition(":")
        found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        return found
    if kind == "__partial__" and isinstance(body, list) and len(body) == 3:
        fn, args, keywords = (wire.from_data(part, functools.partial(_resolve, namespace=namespace)) for part in body)
        return functools.partial(fn, *args, **keywords)
    raise wire.WireError(f"unknown reference {kind}")


def _refer(value):
    number = next(_numbers)
    _handles[number] = value
    kind = type(value)
    return {"__handle__": [number, kind.__name__, kind.__module__, kind.__name__]}


def _answer(kind: str, value) -> str:
    try:
        text = wire.dumps((kind, value), _refer)
    except (wire.WireError, RecursionError, ValueError) as error:
        text = f"the result cannot be sent to the grader: {error}"
    else:
        if len(text) <= wire.MAX_BYTES:
            return text
        text = f"the result is too large to send to the grader ({len(text) / 1024**2:.0f} MB)"
    return wire.dumps(("raised", {"type": "TypeError", "bases": ["TypeError"], "message": text}))


def _raised(error: BaseException) -> str:
    bases = [k.__name__ for k in type(error).__mro__ if getattr(builtins, k.__name__, None) is k]
    return _answer("raised", {"type": type(error).__name__, "bases": bases, "message": str(error)})


def serve(text: str, namespace: dict | None = None) -> str:
    """Run one request (``wire`` text) and answer it; the student's names are the kernel's (or ``namespace``'s)."""
    op = None
    try:
        request = wire.loads(text, functools.partial(_resolve, namespace=namespace))
        op = request["op"]
        with _core.references_applied(request.get("references", [])):
            if op == "call":
                return _answer("ok", _core.run(request["fn"], *request["args"], **request["kwargs"]))
            if op == "observe":  # a course function that runs student code through _core.call
                return _answer("ok", request["fn"](*request["args"], **request["kwargs"]))
            if op == "getattr":
                return _answer("ok", _core.run(getattr, request["target"], request["name"]))
        raise wire.WireError(f"unknown request {op!r}")
    except _Missing as missing:
        return _answer("missing", str(missing))
    except NotImplementedError as error:
        return _answer("not_implemented", str(error))
    except AssertionError as error:
        if op == "observe":
            return _answer("failed", str(error))
        return _raised(error)
    except Exception as error:  # noqa: BLE001 - whatever the student's code raised, as data
        return _raised(error)
