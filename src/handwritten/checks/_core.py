"""What every check shares: comparing a student's answer with PyTorch's, and failing with a
message that names the likely mistake.

Checks raise ``AssertionError`` (nbgrader counts that as a failed test) and print only to
stdout: anything on stderr would zero the test cell.
"""

from __future__ import annotations

import contextlib
import inspect

import torch

# Captured at import, before any student code runs, so that a notebook which reassigns
# ``torch.allclose`` does not change what the checks see.
_allclose = torch.allclose
_isfinite = torch.isfinite


def fail(message: str):
    raise AssertionError(message)


def passed(what: str, n: int | None = None) -> None:
    """Say, on stdout, that the visible checks passed -- never that the hidden ones did."""
    count = f"{n} " if n else ""
    print(f"✓ {what}: {count}public checks passed. Hidden tests run when your work is graded.")


def as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    hint = ""
    if type(value).__module__ == "numpy":
        hint = " Convert it with torch.from_numpy(...) or torch.as_tensor(...)."
    fail(f"{name} should return a torch.Tensor, but it returned {type(value).__name__}.{hint}")


def close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    if tuple(got.shape) != tuple(expected.shape):
        return False
    if got.is_complex() or expected.is_complex():
        return False
    return bool(_allclose(got.detach().double(), expected.detach().double(), rtol=rtol, atol=atol))


def compare(name: str, got, expected: torch.Tensor, *, case: str = "",
            shape_hint=None, mistakes: tuple = (), rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Fail unless ``got`` equals ``expected``.

    ``shape_hint(got_shape, expected_shape)`` explains a wrong shape; ``mistakes`` is a list of
    ``(description, wrong_answer)`` pairs: if the student's output equals a known wrong answer,
    the message names that mistake.
    """
    got = as_tensor(name, got)
    where = f" for {case}" if case else ""
    if tuple(got.shape) != tuple(expected.shape):
        hint = shape_hint(tuple(got.shape), tuple(expected.shape)) if shape_hint else None
        fail(f"{name}{where}: the output has shape {tuple(got.shape)}, expected {tuple(expected.shape)}."
             + (f" {hint}" if hint else ""))
    if not bool(_isfinite(got.detach().double()).all()):
        fail(f"{name}{where}: the output contains inf or nan.")
    if close(got, expected, rtol, atol):
        return
    for description, wrong in mistakes:
        if wrong is not None and close(got, wrong, rtol, atol):
            fail(f"{name}{where}: {description}")
    fail(f"{name}{where}: wrong values.\nexpected:\n{expected}\ngot:\n{got.detach()}")


def dimension_hint(got: tuple, expected: tuple, input_shape: tuple | None = None) -> str | None:
    """Explain an output that has the wrong size along its last two dimensions (rows, columns)."""
    if len(got) != len(expected):
        return f"It should have {len(expected)} dimensions, not {len(got)}."
    if got[-2:] == expected[-2:][::-1] and got[-2:] != expected[-2:]:
        return "Rows and columns are swapped: is the output transposed?"
    if input_shape is not None and got[-2:] == tuple(input_shape[-2:]):
        return ("The output is as large as the input: did you forget the `- k + 1`? An n-wide input "
                "and a k-wide kernel leave n - k + 1 positions for the window.")
    off = {g - e for g, e in zip(got[-2:], expected[-2:]) if g != e}
    which = " and ".join(name for name, g, e in zip(("rows", "columns"), got[-2:], expected[-2:]) if g != e)
    if off == {1}:
        return (f"One too many {which}: the last window starts at n - k, so there are n - k + 1 "
                f"positions, not n - k + 2.")
    if off == {-1}:
        return (f"One too few {which}: range(n - k) misses the last window; there are n - k + 1 "
                f"positions.")
    return None


def _globals_of(obj) -> dict:
    """The module namespace a function or class looks its global names up in."""
    if inspect.isclass(obj):
        for member in vars(obj).values():
            if inspect.isfunction(member):
                return member.__globals__
        return {}
    return getattr(obj, "__globals__", {})


@contextlib.contextmanager
def references_in_place(obj, **references):
    """Temporarily replace the names ``obj`` calls (say ``corr2d``) by reference versions.

    A mistake is then penalised once: a wrong ``corr2d`` costs the ``corr2d`` test, not every
    test of a function built on it.
    """
    namespace = _globals_of(obj)
    missing = object()
    saved = {name: namespace.get(name, missing) for name in references}
    namespace.update(references)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def not_hard_coded(name: str, fn, inputs: list[tuple]) -> None:
    """Fail if ``fn`` gives exactly the same output for different inputs (of any shapes)."""
    outputs = [fn(*args) for args in inputs]
    first = outputs[0]
    if isinstance(first, torch.Tensor) and all(
            isinstance(o, torch.Tensor) and o.shape == first.shape and bool((o == first).all())
            for o in outputs[1:]):
        fail(f"{name} returns the same {tuple(first.shape)} output for different inputs: "
             f"is the answer hard-coded? It must be computed from the arguments.")


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
