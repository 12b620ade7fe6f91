"""The IC card reader over PC/SC (pyscard): readers attached/detached, cards inserted/removed.

Only presence and the ATR are read: pyscard's CardMonitor learns both from
SCardGetStatusChange, without connecting to the card, so no APDU is ever sent and no card data
is read (SEC-3). pyscard calls observers on its own monitoring threads; they hand each change
to the asyncio loop with `loop.call_soon_threadsafe` and do nothing else there.

pcscd may be missing at boot or restart under us: `CardReaderWatch.check()` (called every few
seconds by the agent) starts the monitors once PC/SC answers and restarts them when pyscard's
card thread has died (it stops for good on SCARD_E_NO_SERVICE).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from madoguchi_shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ReaderChange:
    kind: Literal["reader_attached", "reader_detached", "card_inserted", "card_removed"]
    reader: str
    atr: str = ""  # upper-case hex, for cards


def atr_hex(atr) -> str:
    return bytes(atr).hex().upper()


def pcsc_available() -> bool:
    """True when pcscd answers (a context can be established)."""
    try:
        from smartcard.scard import SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCardEstablishContext, SCardReleaseContext
    except ImportError:
        return False
    hresult, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    if hresult != SCARD_S_SUCCESS:
        return False
    SCardReleaseContext(ctx)
    return True


class _ReaderPoller(threading.Thread):
    """Polls the reader list (PC/SC has no reader-insertion event) and hands over the changes; the
    first poll reports every reader present as attached.

    Not pyscard's ReaderMonitor: its polling thread keeps its state in a dict shared by every
    instance, so a monitor started again in the same process (the agent after a pcscd restart, or
    the next test) re-initialises the old thread's state under it: the old thread may keep running
    on the new stop event, and the new one may find the reader list already "known" and never
    report the readers; and the thread dies for good on the first failure to reach pcscd
    (EstablishContextException is not caught), so a pcscd restarted under the agent (or between
    tests) left it blind to readers: the flaky re-attach of
    test_card_inserted_and_removed_arrive_in_jetstream. This one keeps polling through failures."""

    def __init__(
        self, period: float, hand_over: Callable[[ReaderChange], None], list_readers: Callable[[], list] | None = None
    ):
        super().__init__(name="agent-card-readers", daemon=True)
        self._period = period
        self._hand_over = hand_over
        self._list = list_readers
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        if self._list is None:
            from smartcard.System import readers

            self._list = readers
        known: list[str] = []
        failing = False
        while not self._stopped.is_set():
            try:
                current = [str(r) for r in self._list()]
                if failing:
                    log.info("cardreader.list_back")
                failing = False
            except Exception as exc:  # noqa: BLE001 - pcscd gone for a moment: the list stays as it was
                if not failing:
                    log.warning("cardreader.list_failed", error=type(exc).__name__)
                failing = True
                current = known
            for reader in current:
                if reader not in known:
                    self._hand_over(ReaderChange("reader_attached", reader))
            for reader in known:
                if reader not in current:
                    self._hand_over(ReaderChange("reader_detached", reader))
            known = current
            self._stopped.wait(self._period)


class CardReaderWatch:
    """Owns one ReaderObserver and one CardObserver; `post` runs on the asyncio loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, post: Callable[[ReaderChange], None], reader_period: float = 1.0
    ):
        self._loop = loop
        self._post = post
        self._period = reader_period
        self._reader_monitor: _ReaderPoller | None = None
        self._card_monitor = None
        self._card_observer = None
        self._present: dict[str, str] = {}  # reader -> ATR of the card the monitor last reported there

    @property
    def running(self) -> bool:
        return self._card_observer is not None

    def _hand_over(self, change: ReaderChange) -> None:
        # Runs on a pyscard thread: only schedule, never touch agent state here.
        try:
            self._loop.call_soon_threadsafe(self._post, change)
        except RuntimeError:  # the loop is closed: the agent is stopping
            pass

    def start(self) -> bool:
        if self.running:
            return True
        if not pcsc_available():
            return False
        from smartcard.CardMonitoring import CardMonitor, CardObserver

        hand_over = self._hand_over
        present = self._present

        class _Cards(CardObserver):
            def update(self, observable, handlers):
                added, removed = handlers
                for card in removed:
                    present.pop(str(card.reader), None)
                    hand_over(ReaderChange("card_removed", str(card.reader), atr_hex(card.atr)))
                for card in added:
                    present[str(card.reader)] = atr_hex(card.atr)
                    hand_over(ReaderChange("card_inserted", str(card.reader), atr_hex(card.atr)))

        self._reader_monitor = _ReaderPoller(self._period, hand_over)
        self._reader_monitor.start()
        self._card_monitor = CardMonitor()
        self._card_observer = _Cards()
        # addObserver reports the cards already present as "added": they are in the reader now.
        self._card_monitor.addObserver(self._card_observer)
        log.info("cardreader.started")
        return True

    def stop(self) -> None:
        if self._reader_monitor is not None:
            self._reader_monitor.stop()
        if self._card_observer is not None and self._card_monitor is not None:
            self._card_monitor.deleteObserver(self._card_observer)
        self._card_observer = None
        self._reader_monitor = self._card_monitor = None

    def check(self) -> bool:
        """Start when PC/SC has come up; restart when pyscard's card thread died (pcscd restarted)."""
        if self.running and not _card_thread_alive():
            log.warning("cardreader.monitor_died")
            # What happened while the thread was dead is unknown: the cards it had reported are
            # closed as removed, and the new monitor reports the cards present now as inserted (a
            # card that stayed is seen again; a card taken out meanwhile is not left open for ever,
            # which would raise a false card-left alert).
            for reader, atr in list(self._present.items()):
                self._hand_over(ReaderChange("card_removed", reader, atr))
            self._present.clear()
            self.stop()
            _reset_card_monitor()
        return self.start()


def _card_thread_alive() -> bool:
    from smartcard.CardMonitoring import CardMonitoringThread

    thread = CardMonitoringThread.instance
    return thread is not None and thread.is_alive()


def _reset_card_monitor() -> None:
    # pyscard keeps the card monitor and its thread as process-wide singletons; once the thread
    # has ended (no PC/SC service) they must be dropped so the next CardMonitor() starts afresh.
    from smartcard.CardMonitoring import CardMonitor, CardMonitoringThread

    with CardMonitoringThread.lock:
        CardMonitoringThread.instance = None
    with CardMonitor.lock:
        CardMonitor.instance = None
