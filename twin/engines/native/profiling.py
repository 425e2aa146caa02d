"""Where the native engine's step spends its time: wall seconds per kernel, measured from Python.

``NativeEngine(profile=True)`` gets a :class:`KernelProfile`: the engine's methods are bound to it as
copies whose kernel calls (the numba functions of ``twin.engines.native`` that the engine module calls)
go through a timer. An engine without it runs its own methods, untouched: profiling costs nothing when
it is off.
"""
from __future__ import annotations

import sys
import time
import types

PACKAGE = "twin.engines.native."


class KernelProfile:
    """Wall seconds (``seconds``), process CPU seconds (``cpu``: all threads, robust when other processes
    share the cores) and calls (``calls``) per kernel, by ``module.function`` name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def timed(self, name: str, fn):
        """``fn`` with its wall and CPU time added to ``name``."""
        seconds, cpu, calls = self.seconds, self.cpu, self.calls
        seconds.setdefault(name, 0.0)
        cpu.setdefault(name, 0.0)
        calls.setdefault(name, 0)
        clock, cpu_clock = time.perf_counter, time.process_time

        def run(*args, **kwargs):
            t0, c0 = clock(), cpu_clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += clock() - t0
                cpu[name] += cpu_clock() - c0
                calls[name] += 1

        if hasattr(fn, "typeof_pyval"):  # a dispatcher the engine binds to its machine code (twin.jit.bind) ...
            run.typeof_pyval = fn.typeof_pyval
            run.compile = lambda sig: self.timed(name, fn.compile(sig))  # ... which is then timed, not dispatched
        if hasattr(fn, "serial"):  # a parallel kernel's single-threaded twin (twin.jit.parallel_kernel) counts as it
            run.serial = self.timed(name, fn.serial)
        return run

    def instrument(self, engine) -> None:
        """Bind to ``engine`` copies of its class's methods in which every kernel call is timed."""
        home = vars(sys.modules[type(engine).__module__])
        timed_globals = dict(home)
        for name, value in home.items():
            if isinstance(value, types.ModuleType) and value.__name__.startswith(PACKAGE):
                timed_globals[name] = _TimedModule(value, self)
            elif _is_kernel(value) and getattr(value, "__module__", "").startswith(PACKAGE):
                timed_globals[name] = self.timed(f"{value.__module__.rsplit('.', 1)[-1]}.{name}", value)
        for cls in type(engine).__mro__:
            for attr, fn in vars(cls).items():
                if isinstance(fn, types.FunctionType) and fn.__globals__ is home and attr not in vars(engine):
                    copy = types.FunctionType(fn.__code__, timed_globals, fn.__name__, fn.__defaults__, fn.__closure__)
                    copy.__kwdefaults__ = fn.__kwdefaults__
                    setattr(engine, attr, types.MethodType(copy, engine))

    def table(self, total: float | None = None) -> list[tuple[str, float, int, float]]:
        """(kernel, seconds, calls, share of ``total`` [s] or of all kernels) rows, the slowest first."""
        ref = total if total else (sum(self.seconds.values()) or 1.0)
        rows = [(k, s, self.calls[k], s / ref) for k, s in self.seconds.items() if self.calls[k]]
        return sorted(rows, key=lambda r: -r[1])


class _TimedModule:
    """A kernel module whose functions are timed (other attributes, e.g. constants, as they are)."""

    def __init__(self, module: types.ModuleType, profile: KernelProfile) -> None:
        self._module = module
        self._profile = profile
        self._short = module.__name__.rsplit(".", 1)[-1]

    def __getattr__(self, name: str):
        value = getattr(self._module, name)
        if _is_kernel(value):
            value = self._profile.timed(f"{self._short}.{name}", value)
        setattr(self, name, value)  # looked up once
        return value


def _is_kernel(value) -> bool:
    """A compiled kernel (or, with ``NUMBA_DISABLE_JIT=1``, the plain function it would be)."""
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover
        Dispatcher = ()
    return isinstance(value, (types.FunctionType, Dispatcher))
