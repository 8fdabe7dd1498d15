"""What both HTTP servers of the project (the served model, the wearer's page) share: uvicorn's
h11 protocol with a deadline for a request's headers."""

from __future__ import annotations

from typing import Any


def protocol_with_header_deadline(seconds: float) -> type:
    """uvicorn's h11 protocol that closes a connection whose request headers have not all
    arrived ``seconds`` after it opened (or after its last response): a half-sent request holds
    nothing for long."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineProtocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._deadline = self.loop.call_later(seconds, self._close_if_waiting)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete and self._deadline is not None:
                self._deadline.cancel()  # a request arrived whole: its handling has no deadline here
                self._deadline = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._deadline = self.loop.call_later(seconds, self._close_if_waiting)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _close_if_waiting(self) -> None:
            self._deadline = None
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

    return DeadlineProtocol
