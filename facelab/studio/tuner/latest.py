"""Latest request wins: each page (client id) numbers its render requests; a request that a newer one of
the same client has overtaken stops at its next checkpoint (before the model, before compositing, before
encoding) instead of finishing a frame nobody will see."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from facelab.core.errors import FacelabError

MAX_CLIENTS = 256


class Superseded(FacelabError):
    """A newer request of the same page came in."""


@dataclass(frozen=True)
class Ticket:
    board: Latest
    client: str
    seq: int

    def check(self) -> None:
        if self.board.newest(self.client) > self.seq:
            raise Superseded(f"render request {self.seq} superseded by a newer one")


class Latest:
    def __init__(self) -> None:
        self._seqs: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, client: str, seq: int) -> Ticket:
        """Register request ``seq`` of ``client`` (an older or equal seq than one seen is refused at once)."""
        with self._lock:
            newest = self._seqs.get(client, -1)
            if seq > newest:
                self._seqs[client] = seq
            self._seqs.move_to_end(client)
            while len(self._seqs) > MAX_CLIENTS:
                self._seqs.popitem(last=False)
        ticket = Ticket(self, client, seq)
        ticket.check()
        return ticket

    def newest(self, client: str) -> int:
        with self._lock:
            return self._seqs.get(client, -1)


def no_ticket() -> None:
    """The checkpoint of a request that nothing supersedes."""
