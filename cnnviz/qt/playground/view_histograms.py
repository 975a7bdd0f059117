"""The output views' histograms, throttled: counted only for what is drawn, redrawn at most a
few times a second while results stream in (one view per slot, round robin), and exactly
once they stop, so the final picture and its histogram agree. A mixin of
:class:`~cnnviz.qt.playground.views.OutputViews` (``self.views``, its two timers and their
bookkeeping are set up there)."""

from __future__ import annotations

import math
import time

#: Histograms are redrawn at most this often while results stream in (a kernel drag, a
#: camera); the last result's histogram is always drawn within this time.
HISTOGRAM_INTERVAL_MS = 250
#: Once no result came for this long the stream has settled: the histograms are drawn
#: exactly for the last result (their value range too, which streaming redraws keep
#: unless the levels leave it: a new range regenerates the axis, the costliest part).
HISTOGRAM_SETTLE_MS = 150
_clock = time.perf_counter   # the histogram throttle's clock (tests replace it)



class HistogramThrottle:
    def flush_histograms(self, settled: bool = True) -> None:
        """Draw every histogram that has a newer picture waiting (``settled=False`` while
        results still stream in: value ranges are kept if the levels fit)."""
        self._hist_timer.stop()
        self._hist_flushed_at = _clock()
        for v in self.views.values():
            v.flush_histogram(settled)

    def settle_histograms(self) -> None:
        """Results stopped coming: every histogram exactly for the picture shown."""
        self._hist_settle_timer.stop()
        self._hist_timer.stop()
        if self.histograms_pending():
            self._hist_flushed_at = _clock()
        for v in self.views.values():
            v.settle_histogram()

    def histograms_pending(self) -> bool:
        """Some histogram still shows an older result (it is drawn within HISTOGRAM_INTERVAL_MS)."""
        return any(v.histogram_pending() for v in self.views.values())

    def _hist_slot_ms(self) -> int:
        shown = sum(1 for v in self.views.values() if v.histogram_visible())
        return max(1, int(math.ceil(HISTOGRAM_INTERVAL_MS / max(1, shown))))

    def _schedule_histograms(self) -> None:
        # An isolated result: every histogram at once (the leading edge). Results streaming
        # in: one view's histogram per slot, round robin, so each is redrawn about once per
        # interval and no single frame pays for all of them; once results stop, every
        # histogram exactly (the settle timer restarts on every result).
        if not self.isVisible():
            return
        self._hist_settle_timer.start()
        if self._hist_timer.isActive() or not self.histograms_pending():
            return
        since_ms = (_clock() - self._hist_flushed_at) * 1e3
        self._hist_leading = since_ms >= HISTOGRAM_INTERVAL_MS
        self._hist_timer.start(0 if self._hist_leading else self._hist_slot_ms())

    def _on_hist_timer(self) -> None:
        if self._hist_leading:
            self.flush_histograms(settled=True)
            return
        views = list(self.views.values())
        for i in range(len(views)):
            v = views[(self._hist_next + i) % len(views)]
            if v.histogram_pending():
                self._hist_next = (self._hist_next + i + 1) % len(views)
                self._hist_flushed_at = _clock()
                v.flush_histogram(settled=False)
                break
        if self.histograms_pending():
            self._hist_timer.start(self._hist_slot_ms())

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._hist_timer.stop()  # nothing to draw while hidden (and no timer left on close)
        self._hist_settle_timer.stop()
        super().hideEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._schedule_histograms()
