"""The trusted side of a graded test cell: the student's objects as references, reached only by messages.

While ``handwritten grade`` grades a notebook, its test cells run in the grader's process, not in the
student's kernel (``grading/trusted.py``). There a name the student defined (``corr2d``) is a ``Remote``: a
reference to an object that stays in the kernel. ``_core.call`` sends "call this with these values" through the
``Session`` and gets data back (``wire``): the check computes what it expects, compares and decides here, where
no student code runs. What the student's code returns that is not data (a model, a loader) stays in the kernel
too, as another ``Remote``. The kernel's half is ``_agent.py``.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import functools
import importlib
import itertools
from collections.abc import Callable

from .. import wire

__all__ = ["MissingName", "Remote", "RemoteError", "Session", "active", "involves", "marker_of"]

_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar("handwritten_session", default=None)
_COURSE = ("handwritten.", "torch", "math")
_BUILTINS = ("len", "tuple", "list", "iter", "next", "float", "int", "bool", "str", "repr", "sorted", "sum",
             "isinstance", "getattr", "hasattr", "callable", "dir", "type", "vars")


class RemoteError(RuntimeError):
    """The grading boundary itself failed: an answer that is not data, or a check that tried to send
    something that cannot cross. The test cell fails; nothing runs that should not."""


class MissingName(NameError):
    """The student's namespace has no such name (an exercise deleted or renamed): the test cell fails with the
    NameError it would raise in the kernel, not as a failed check."""


class Remote:
    """An object that lives in the student's kernel. Its class is named after the object's own class (a
    ``Remote`` of a ``Conv2D`` is a ``Conv2D`` by name), so a check's message reads as it would in the kernel."""

    __slots__ = ("_marker", "_session", "_label")

    def __init__(self, session: Session, marker: dict, label: str):
        object.__setattr__(self, "_marker", marker)
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_label", label)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # introspection by trusted code never reaches the kernel
        return self._session.request({"op": "getattr", "target": self, "name": name},
                                     what=f"{self._label}.{name}")

    def __setattr__(self, name, value):
        raise RemoteError(f"a check tried to set {self._label}.{name} in the student's kernel directly")

    def __call__(self, *args, **kwargs):
        raise RemoteError(f"a check called {self._label} directly instead of through _core.call")

    def __iter__(self):
        raise RemoteError(f"a check iterated over {self._label} directly instead of through _core.call")

    def __len__(self):
        raise RemoteError(f"a check took len({self._label}) directly instead of through _core.call")

    def __bool__(self):
        return True

    def __repr__(self):
        return f"<{self._label} in the student's kernel>"


@functools.lru_cache(maxsize=256)
def _remote_class(name: str, module: str) -> type:
    safe = name if name.isidentifier() else "Remote"
    return type(safe, (Remote,), {"__slots__": (), "__module__": module if isinstance(module, str) else "?"})


def marker_of(value) -> dict | None:
    """How ``value`` crosses as a reference: a ``Remote`` as its marker, a function or class of the course (or
    of torch) by its import path (a ``functools.partial`` of one, with data for its arguments), an allowed builtin
    by name; None for anything else."""
    if isinstance(value, Remote):
        return object.__getattribute__(value, "_marker")
    if type(value) is functools.partial and marker_of(value.func) is not None:
        try:  # a course function with some of its arguments given (the reference is_3 with the lesson's means)
            return {"__partial__": [marker_of(value.func), wire.to_data(list(value.args), marker_of),
                                    wire.to_data(dict(value.keywords), marker_of)]}
        except wire.WireError:
            return None
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        if module == "builtins" and qualname in _BUILTINS and getattr(builtins, qualname) is value:
            return {"__builtin__": qualname}
        if module.startswith(_COURSE) or module in ("torch", "math"):
            try:
                found = importlib.import_module(module)
                for part in qualname.split("."):
                    found = getattr(found, part)
            except (ImportError, AttributeError):
                return None
            if found is value:
                return {"__course__": f"{module}:{qualname}"}
    return None


def involves(*values) -> bool:
    """Whether any of ``values`` (or anything inside a list, tuple or dict of them) lives in the kernel."""
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, Remote):
            return True
        if type(value) in (list, tuple):
            stack.extend(value)
        elif type(value) is dict:
            stack.extend(value.values())
    return False


def active() -> Session | None:
    return _session.get()


class Session:
    """The trusted side's line to one student kernel. ``send(text) -> text`` carries one request and its
    answer (the grader's executor provides it); requests and answers are ``wire`` text."""

    def __init__(self, send: Callable[[str], str], clock: Callable[[], float | None] | None = None):
        self._send = send
        self.clock = clock  # the CPU seconds the student's kernel has used (all its processes), or None
        self._references: list[tuple[dict, dict]] = []
        self._ids = itertools.count()

    @contextlib.contextmanager
    def running(self):
        token = _session.set(self)
        try:
            yield self
        finally:
            _session.reset(token)

    def name(self, name: str) -> Remote:
        """The object the student's namespace binds to ``name`` (looked up when first used)."""
        return _remote_class(name, "__main__")(self, {"__global__": name}, name)

    @contextlib.contextmanager
    def references(self, target: Remote, references: dict):
        """Run the requests made meanwhile with ``references`` in place where ``target`` looks names up."""
        for name, value in references.items():
            try:
                wire.to_data(value, marker_of)  # data (a tensor), or a function of the course
            except wire.WireError:
                raise RemoteError(f"the reference {name} cannot be put in place across the boundary") from None
        self._references.append((target, dict(references)))
        try:
            yield
        finally:
            self._references.pop()

    def _refer(self, value):
        marker = marker_of(value)
        if marker is None:
            raise RemoteError(f"a check tried to send a {type(value).__name__} to the student's kernel: only data "
                              f"and the course's own functions cross")
        return marker

    def _resolve(self, marker: dict):
        if set(marker) == {"__handle__"} and isinstance(marker["__handle__"], list) and len(marker["__handle__"]) == 4:
            number, name, module, label = marker["__handle__"]
            if not isinstance(number, int):
                raise wire.WireError("not a handle")
            return _remote_class(str(name), str(module))(self, {"__handle__": number}, str(label))
        raise wire.WireError("the kernel answered with a reference it may not send")

    def request(self, request: dict, what: str):
        """Send ``request``; its answer: ``("ok", value)`` gives the value, anything else an ``Answer``'s exception."""
        request = dict(request, references=[[t, r] for t, r in self._references], label=what)
        try:
            text = wire.dumps(request, self._refer)
        except wire.WireError as error:
            raise RemoteError(str(error)) from None
        answer = self._send(text)
        try:
            kind, body = wire.loads(answer, self._resolve)
        except (wire.WireError, TypeError, ValueError) as error:
            raise RemoteError(f"the student's kernel did not answer with data: {error}") from None
        if kind == "ok":
            return body
        raise Raised.from_answer(kind, body)


class Raised(Exception):
    """What the student's code raised in the kernel, as the trusted side knows it: the class's name, its
    module, the names of its builtin bases, and its message (``str(error)``)."""

    def __init__(self, message: str, type_name: str = "Exception", bases: tuple = ()):
        super().__init__(message)
        self.type_name, self.bases = type_name, bases

    @staticmethod
    def from_answer(kind, body):
        if kind == "not_implemented":
            return NotImplementedError(str(body))
        if kind == "failed":  # a course function in the kernel failed a check: its message, as it is
            return AssertionError(str(body))
        if kind == "missing":
            return MissingName(f"name {str(body)!r} is not defined")
        if kind == "raised" and isinstance(body, dict):
            bases = tuple(str(b) for b in body.get("bases", ()) if isinstance(b, str))
            return as_builtin(str(body.get("message", "")), str(body.get("type", "Exception")), bases)
        return RemoteError(f"the student's kernel answered {kind!r}")


def as_builtin(message: str, type_name: str, bases: tuple) -> BaseException:
    """An exception standing for the student's: of a class named like theirs, deriving from the nearest builtin
    exception they derive from, so ``isinstance(error, TypeError)`` and ``type(error).__name__`` hold here too."""
    base = next((getattr(builtins, b) for b in bases if isinstance(getattr(builtins, b, None), type)
                 and issubclass(getattr(builtins, b), Exception)), Exception)
    if type_name == base.__name__:
        return base(message)
    name = type_name if type_name.isidentifier() else base.__name__
    return type(name, (base,), {"__str__": lambda self: message})(message)
