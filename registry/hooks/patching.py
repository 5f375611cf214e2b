"""A framework's autologging (``Hook``): while it is enabled, some of the framework's
functions or methods are replaced by wrappers that record each call as a training
(``Hook.training``); disabling puts the originals back. Enabling again only changes
the options, so ``autolog()`` may be called any number of times."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from registry.hooks.recording import AutologOptions, Options, Training, quietly
from registry.sdk.runs import current

#: The training being recorded in this thread or task: a training call made inside it
#: (a pipeline fitting its steps, a wrapper calling the native API) is not recorded as
#: another run; a hook may add to the outer one (``Hook.outer``).
_training: ContextVar[Training | None] = ContextVar("mlledger_training", default=None)

_MISSING = object()


class Hook:
    """The autologging of one framework: ``install(hook)`` patches its functions with
    ``hook.patch``; ``enable`` and ``disable`` turn it on and off."""

    def __init__(self, name: str, install: Callable[[Hook], None]):
        self.name = name
        self.options: Options | None = None
        self._install = install
        self._patches: list[tuple[Any, str, Any]] = []
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.options is not None

    def enable(self, options: Options) -> None:
        """Turn autologging on with ``options`` (patching once; again: new options)."""
        with self._lock:
            if not self._patches:
                try:
                    self._install(self)
                except BaseException:
                    self._restore()
                    raise
            self.options = options

    def switch(self, disable: bool, options: AutologOptions) -> None:
        """A framework's ``autolog(disable=..., **options)``: off, or on with ``options``."""
        if disable:
            self.disable()
        else:
            self.enable(Options(**options))

    def disable(self) -> None:
        """Turn autologging off: every patched function is the original again."""
        with self._lock:
            self.options = None
            self._restore()

    def _restore(self) -> None:
        while self._patches:
            owner, attr, original = self._patches.pop()
            if original is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)

    def patch(self, owner: Any, attr: str, make: Callable[[Callable[..., Any]], Any]) -> None:
        """Replace ``owner.attr`` (a class's method or a module's function) by
        ``make(original)``; ``disable`` restores what ``owner`` itself held (an inherited
        method is deleted again, so the base class's shows through)."""
        held = owner.__dict__.get(attr, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        original = getattr(owner, attr)
        wrapper = make(original)
        functools.update_wrapper(wrapper, original)
        wrapper.__mlledger_hook__ = self.name
        setattr(owner, attr, wrapper)
        self._patches.append((owner, attr, held))

    @staticmethod
    def outer() -> Training | None:
        """The training being recorded around the caller, if any."""
        return _training.get()

    def training(
        self,
        call: Callable[[], Any],
        *,
        job: Callable[[], str],
        params: Callable[[], Mapping[str, Any]],
        after: Callable[[Training, Any], None] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Any:
        """``call()``, recorded: a run of ``job()`` with ``params()`` (or the active run,
        joined), made the current run while ``call`` runs, then ``after(training,
        result)`` records what it produced. What ``call`` returns or raises is returned or
        raised unchanged; when the hook is off, or a training is already being recorded
        around this one, ``call()`` alone runs."""
        options = self.options
        if options is None or _training.get() is not None:
            return call()
        begun: list[Training] = []
        with quietly(self.name, "start a run"):
            begun.append(Training.begin(self.name, options, job(), params(), tags))
        if not begun:
            return call()
        training = begun[0]
        token = _training.set(training)
        try:
            if training.run is not None:
                with current(training.run):
                    result = call()
            else:
                result = call()
        except BaseException as exc:
            _training.reset(token)
            training.end(exc)
            raise
        _training.reset(token)
        if after is not None:
            with quietly(self.name, "record the training's results"):
                after(training, result)
        training.end()
        return result
