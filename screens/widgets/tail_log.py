"""A log that follows its tail until the user scrolls up, and again once they scroll back down."""
from __future__ import annotations

from textual.widgets import RichLog


class TailLog(RichLog):
    """``follow`` changes only on the user's scrolling, never on where a pending programmatic scroll
    happens to be at a tick, so what the log shows does not depend on timing."""

    follow = True

    def keep_at_end(self) -> None:
        """Called on every redraw tick: lines written before the log had its size (or while a
        resize was in flight) leave it short of the end; a following log goes back there."""
        if self.follow and not self.is_vertical_scroll_end:
            self.scroll_end(animate=False)

    def _stop_following(self) -> None:
        self.follow = False

    def _resume_if_at_end(self) -> None:
        if self.is_vertical_scroll_end:
            self.follow = True

    def action_scroll_up(self) -> None:
        self._stop_following()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._stop_following()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._stop_following()
        super().action_scroll_home()

    def _on_mouse_scroll_up(self, event) -> None:
        self._stop_following()
        super()._on_mouse_scroll_up(event)

    def action_scroll_down(self) -> None:
        super().action_scroll_down()
        self.call_after_refresh(self._resume_if_at_end)

    def action_page_down(self) -> None:
        super().action_page_down()
        self.call_after_refresh(self._resume_if_at_end)

    def action_scroll_end(self) -> None:
        super().action_scroll_end()
        self.follow = True

    def _on_mouse_scroll_down(self, event) -> None:
        super()._on_mouse_scroll_down(event)
        self.call_after_refresh(self._resume_if_at_end)
