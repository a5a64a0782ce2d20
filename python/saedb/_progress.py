"""The default progress display of long ingests: a tqdm bar per phase when tqdm is installed."""

from __future__ import annotations

from typing import Optional


class TqdmProgress:
    """A `progress=` callable `(phase, done, total)` drawing one tqdm bar per phase."""

    def __init__(self, tqdm_class) -> None:
        self._tqdm = tqdm_class
        self._bar = None
        self._phase: Optional[str] = None
        self._shown = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self._phase:
            self.close()
            self._phase = phase
            self._bar = self._tqdm(desc=phase, total=total or None, leave=False)
            self._shown = 0
        if self._bar is not None:
            if total and self._bar.total != total:
                self._bar.total = total
            if done > self._shown:
                self._bar.update(done - self._shown)
                self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._phase = None


def default():
    """A tqdm progress display if tqdm is installed, else None (no display)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return TqdmProgress(tqdm)
