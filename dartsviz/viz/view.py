"""WidgetView: what every dartsviz widget shares. It displays `self.widget`, and its
handlers never raise into the notebook: an error becomes one red line in
`self.status` and its traceback is kept in `last_error`."""
from __future__ import annotations

import html
import traceback
from typing import Callable, Optional


class WidgetView:
    widget = None                      # the ipywidgets tree to display
    status = None                      # an ipywidgets.HTML status line
    last_error: Optional[str] = None   # traceback of the last handler error

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def _set_status(self, text: str, error: bool = False) -> None:
        color = "#c00000" if error else "#333333"
        self.status.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _on_interrupt(self) -> None:
        self._set_status("interrupted")

    def _guard(self, fn: Callable, name: Optional[str] = None) -> Callable:
        """Wrap a widget callback: errors go to the status line, never out of the handler."""
        def wrapped(*args):
            try:
                fn(*args)
            except KeyboardInterrupt:
                self._on_interrupt()
            except Exception as e:  # a UI boundary: show every error instead of losing it
                self.last_error = traceback.format_exc()
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                where = f" in {name}" if name else ""
                self._set_status(f"error{where}: {type(e).__name__}: {first}", error=True)
        return wrapped
