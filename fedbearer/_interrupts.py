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

Inside an interruptible call, a signal is held too where raising it would do harm: in
:mod:`threading` and :mod:`queue` code (with requests' connection pool, a lock left held
there deadlocks urllib3's own clean-up), in a finalizer or weakref callback (CPython would
drop it) and while the call's frame is torn down. It is raised as soon as the call returns,
or at the next :func:`checkpoint` of a long wait. A finalizer can also run code that is not
recognisable as one (IOBase's asks a Python ``closed`` property, then calls ``close()``,
and silently discards what they raise): a KeyboardInterrupt raised inside the call that
does not come out of it is raised again when the call returns.

Only the main thread receives signals: in other threads, and while SIGINT has no Python
handler (ignored, or the default action), the decorators just call the function.
"""

from __future__ import annotations

import _weakrefset
import functools
import queue
import signal
import sys
import threading
import weakref
from types import CodeType, FrameType
from typing import Any, Callable, Optional, TypeVar, cast

_F = TypeVar("_F", bound=Callable[..., Any])
_Handler = Callable[[int, Optional[FrameType]], Any]
#: The code of every function marked interruptible.
_INTERRUPTIBLE: set[CodeType] = set()


class _Holder:
    """The SIGINT handler while a :func:`defers_interrupts` function runs in the main thread."""

    def __init__(self, previous: _Handler) -> None:
        self.previous = previous
        self.held = False
        #: How many times the previous handler raised: an interruptible call compares it
        #: before and after, to see a KeyboardInterrupt that something swallowed.
        self.raised = 0

    def __call__(self, signum: int, frame: Optional[FrameType]) -> None:
        if _raise_now(frame):
            self.held = False
            try:
                self.previous(signum, frame)
            except BaseException:
                self.raised += 1
                raise
        else:
            self.held = True

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
                if outer is not None and outer.held and _raise_now(sys._getframe(1)):
                    outer.deliver()

    return cast(_F, deferring)


def interruptible(func: _F) -> _F:
    """Decorator: Ctrl-C interrupts ``func`` at once, even when called from held-back code
    (but for the few places :func:`_raise_now` lists, where it waits for ``func`` to return)."""
    _INTERRUPTIBLE.add(func.__code__)

    @functools.wraps(func)
    def interrupting(*args: Any, **kwargs: Any) -> Any:
        holder = _installed()
        raised = 0
        if holder is not None:
            holder.deliver()  # a Ctrl-C held until now ends the login before it waits
            raised = holder.raised
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            if not caused_by_interrupt(exc):
                raise
            raise KeyboardInterrupt from exc
        finally:
            if holder is not None:
                holder.deliver()  # one held while func's frame was torn down (see _raise_now)
        if holder is not None and holder.raised != raised:
            # func returned although a Ctrl-C was raised in it: code that discards exceptions
            # swallowed it (IOBase's finalizer does, silently, for its `closed` and `close`,
            # which no frame marks as a finalizer). Raise it again rather than lose it.
            holder.previous(signal.SIGINT, sys._getframe(0))
        return result

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
# Standard library modules where a KeyboardInterrupt does harm. threading and queue take and
# release locks in Python code: raised there, it can leave a lock held (in urllib3's
# connection pool, its own clean-up then blocks for ever on it) or come out as
# RuntimeError("release unlocked lock"). weakref and _weakrefset hold the weakref callbacks
# the garbage collector runs (weakref.finalize, WeakSet's and the weak dictionaries'
# removals): raised there, CPython prints "Exception ignored in" and drops it.
_HOLDING_MODULES = frozenset(
    {threading.__file__, queue.__file__, weakref.__file__, _weakrefset.__file__}
)


def _raise_now(frame: Optional[FrameType]) -> bool:
    """Whether a SIGINT that lands in ``frame`` is raised now, or held.

    The innermost mark on the stack decides: under :func:`defers_interrupts` it is held;
    under :func:`interruptible` it is raised, unless it landed where raising it would do
    harm, in code that runs within the interruptible function without being part of it:

    * in :mod:`threading` or :mod:`queue`, which :mod:`requests` uses too;
    * in a finalizer (``weakref.finalize``, ``__del__``) or another weakref callback (a
      ``WeakSet``'s), where CPython drops it (with an "Exception ignored" traceback on
      stderr);
    * in what runs as the function's frame is torn down (the responses and connection
      pools it leaves are closed then), which runs straight under the mark.

    Held there, it is raised when the function returns, or at its next :func:`checkpoint`.
    """
    inner: Optional[FrameType] = None
    while frame is not None:
        code = frame.f_code
        if code is _DEFERRING:
            return False
        if code is _INTERRUPTING:
            return inner is None or inner.f_code in _INTERRUPTIBLE
        if code.co_name == "__del__" or code.co_filename in _HOLDING_MODULES:
            return False
        inner, frame = frame, frame.f_back
    return True


def checkpoint() -> None:
    """Raise a Ctrl-C held inside an interruptible call (see :func:`_raise_now`); long
    waits call it as they poll."""
    holder = _installed()
    if holder is not None:
        holder.deliver()


@defers_interrupts
def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, which Ctrl-C cannot cut in half: the thread runs when it returns,
    and does not exist when it raises."""
    thread.start()
