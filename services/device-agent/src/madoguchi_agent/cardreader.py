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


class CardReaderWatch:
    """Owns one ReaderObserver and one CardObserver; `post` runs on the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, post: Callable[[ReaderChange], None], reader_period: float = 1.0):
        self._loop = loop
        self._post = post
        self._period = reader_period
        self._reader_monitor = None
        self._card_monitor = None
        self._reader_observer = None
        self._card_observer = None

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
        from smartcard.ReaderMonitoring import ReaderMonitor, ReaderObserver

        hand_over = self._hand_over

        class _Readers(ReaderObserver):
            def update(self, observable, handlers):
                added, removed = handlers
                for reader in added:
                    hand_over(ReaderChange("reader_attached", str(reader)))
                for reader in removed:
                    hand_over(ReaderChange("reader_detached", str(reader)))

        class _Cards(CardObserver):
            def update(self, observable, handlers):
                added, removed = handlers
                for card in removed:
                    hand_over(ReaderChange("card_removed", str(card.reader), atr_hex(card.atr)))
                for card in added:
                    hand_over(ReaderChange("card_inserted", str(card.reader), atr_hex(card.atr)))

        self._reader_monitor = ReaderMonitor(period=self._period)
        self._reader_observer = _Readers()
        self._reader_monitor.addObserver(self._reader_observer)
        self._card_monitor = CardMonitor()
        self._card_observer = _Cards()
        # addObserver reports the cards already present as "added": they are in the reader now.
        self._card_monitor.addObserver(self._card_observer)
        log.info("cardreader.started")
        return True

    def stop(self) -> None:
        if self._reader_observer is not None and self._reader_monitor is not None:
            self._reader_monitor.deleteObserver(self._reader_observer)
        if self._card_observer is not None and self._card_monitor is not None:
            self._card_monitor.deleteObserver(self._card_observer)
        self._reader_observer = self._card_observer = None
        self._reader_monitor = self._card_monitor = None

    def check(self) -> bool:
        """Start when PC/SC has come up; restart when pyscard's card thread died (pcscd restarted)."""
        if self.running and not _card_thread_alive():
            log.warning("cardreader.monitor_died")
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
