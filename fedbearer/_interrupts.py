"""Ctrl-C during a login: held back while threads and sockets are set up or torn down.

CPython runs the SIGINT handler, which raises :class:`KeyboardInterrupt`, between almost
any two bytecodes of the main thread (the :mod:`signal` documentation, "Note on Signal
Handlers and Exceptions"), and neither ``try``/``finally`` nor :mod:`threading` is safe
against that:

* raised inside :meth:`threading.Thread.start`, it leaves a thread that runs although
  ``start()`` failed (and that ``join()`` refuses: "cannot join thread before it is
  started"), or it comes out of the condition variable behind ``start()`` as
  ``RuntimeError("release unlocked lock")``;
* raised inside :meth:`threading.Event.wait` or ``set()``, it can leave the event's lock
  held, and the next ``set()`` blocks for ever;
* raised on the first line of a clean-up, it skips the clean-up: the port stays open.

So, as Trio does, the code that must not be cut in half runs in functions decorated with
:func:`defers_interrupts`. While one of them is on the main thread's stack, a SIGINT is
held, and handed to the handler that was there before (which raises ``KeyboardInterrupt``)
when the outermost one returns. Inside them, :func:`interruptible` marks the calls that
Ctrl-C must cut short at once: the waits and the writes to the user. Which rule applies is
decided from the frames the signal lands in, innermost mark first, so there is no instant
between "held" and "not held" for a signal to slip through; and a Ctrl-C held during set-up
takes effect as soon as the login starts to wait. The held stretches are short: starting a
thread, closing a socket, joining a thread that has been told to stop.

Only the main thread receives signals: in other threads, and while SIGINT has no Python
handler (ignored, or the default action), the decorators just call the function.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from types import CodeType, FrameType
from typing import Any, Callable, Optional, TypeVar, cast

_F = TypeVar("_F", bound=Callable[..., Any])
_Handler = Callable[[int, Optional[FrameType]], Any]


class _Holder:
    """The SIGINT handler while a :func:`defers_interrupts` function runs in the main thread."""

    def __init__(self, previous: _Handler) -> None:
        self.previous = previous
        self.held = False

    def __call__(self, signum: int, frame: Optional[FrameType]) -> None:
        if _deferring(frame):
            self.held = True
        else:
            self.held = False
            self.previous(signum, frame)

    def deliver(self) -> None:
        """Hand a held SIGINT to the previous handler (which raises KeyboardInterrupt)."""
        if self.held:
            self.held = False
            self.previous(signal.SIGINT, sys._getframe(1))


def _install() -> Optional[_Holder]:
    """Install a holder as the SIGINT handler; ``None`` when not needed or not possible."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if isinstance(previous, _Holder) or not callable(previous):
        return None  # an outer call holds already; or SIGINT is ignored or kills the process
    holder = _Holder(previous)
    try:
        signal.signal(signal.SIGINT, holder)
    except ValueError:  # not the main interpreter
        return None
    return holder


def _installed() -> Optional[_Holder]:
    if threading.current_thread() is not threading.main_thread():
        return None  # never deliver a held SIGINT in a thread that did not get it
    handler = signal.getsignal(signal.SIGINT)
    return handler if isinstance(handler, _Holder) else None


def defers_interrupts(func: _F) -> _F:
    """Decorator: Ctrl-C does not interrupt ``func``; it takes effect when ``func`` returns."""

    @functools.wraps(func)
    def deferring(*args: Any, **kwargs: Any) -> Any:
        # A SIGINT before the holder is installed raises here, before func has done anything.
        holder = _install()
        try:
            return func(*args, **kwargs)
        finally:
            if holder is not None:
                signal.signal(signal.SIGINT, holder.previous)
                holder.deliver()
            else:
                # Nested: deliver now unless the caller is itself held back.
                outer = _installed()
                if outer is not None and outer.held and not _deferring(sys._getframe(1)):
                    outer.deliver()

    return cast(_F, deferring)


def interruptible(func: _F) -> _F:
    """Decorator: Ctrl-C interrupts ``func`` at once, even when called from held-back code."""

    @functools.wraps(func)
    def interrupting(*args: Any, **kwargs: Any) -> Any:
        holder = _installed()
        if holder is not None:
            holder.deliver()  # a Ctrl-C held until now ends the login before it waits
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if not caused_by_interrupt(exc):
                raise
            raise KeyboardInterrupt from exc

    return cast(_F, interrupting)


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a :class:`KeyboardInterrupt`.

    Code that fails while Ctrl-C unwinds the stack replaces the ``KeyboardInterrupt`` with
    its own error (threading's condition variable raises ``RuntimeError("release unlocked
    lock")``, a network library its connection error); the user still pressed Ctrl-C.
    """
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__context__
    return False


_DEFERRING: CodeType = defers_interrupts(lambda: None).__code__
_INTERRUPTING: CodeType = interruptible(lambda: None).__code__


def _deferring(frame: Optional[FrameType]) -> bool:
    """Whether the innermost mark on ``frame``'s stack is :func:`defers_interrupts`."""
    while frame is not None:
        code = frame.f_code
        if code is _DEFERRING:
            return True
        if code is _INTERRUPTING:
            return False
        frame = frame.f_back
    return False


@defers_interrupts
def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, which Ctrl-C cannot cut in half: the thread runs when it returns,
    and does not exist when it raises."""
    thread.start()
