"""Only with ``c.SandboxedExecute.tests_run_in = "kernel"``: how test cells ran before they moved to the grader
(``trusted.py``), kept so that ``tests/test_forgery.py`` can show each cheat stealing there. It runs inside the
graded kernel: ``SandboxedExecute`` sends this file's text before the first cell. It snapshots the
functions of the libraries the checks rely on (torch, numpy, builtins, ``handwritten``), and before every
test cell puts back any that student code replaced (``torch.allclose = lambda *a, **k: True``, a patched
``check.corr2d``), along with the modules the setup cell bound to names (``check``, ``torch``). A student can
dig the snapshot out of the process, and much else besides: that is why the tests no longer run there.
"""


def _handwritten_guard():
    import builtins
    import importlib
    import pkgutil
    import types

    names = ["torch", "torch.nn", "torch.nn.functional", "torch.testing", "numpy", "numpy.testing", "math"]
    try:
        import handwritten.checks

        names += ["handwritten", "handwritten.checks"]
        names += [f"handwritten.checks.{m.name}" for m in pkgutil.iter_modules(handwritten.checks.__path__)]
    except Exception:
        pass
    owners = [builtins]
    for name in names:
        try:
            owners.append(importlib.import_module(name))
        except Exception:
            pass
    for cls in ("Tensor", "nn.Module"):
        try:
            owners.append(eval("torch." + cls, {"torch": importlib.import_module("torch")}))
        except Exception:
            pass
    kept = {id(owner): (owner, {k: v for k, v in vars(owner).items()
                                if callable(v) or isinstance(v, types.ModuleType)}) for owner in owners}
    bound = {}

    def restore(capture_names=False):
        namespace = get_ipython().user_ns  # noqa: F821 (defined in every IPython kernel)
        if capture_names:
            bound.update({k: v for k, v in namespace.items() if isinstance(v, types.ModuleType)})
            return
        for owner, values in kept.values():
            for key, value in values.items():
                try:
                    if vars(owner).get(key, None) is not value:
                        setattr(owner, key, value)
                except Exception:
                    pass
        namespace.update(bound)

    return restore


__handwritten_guard__ = _handwritten_guard()
del _handwritten_guard
