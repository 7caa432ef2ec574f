"""What a projection is: a name, the events it handles, and how to handle each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ugc.database import Cursor

# A read model's handler gets the batch's cursor and the event; a side effect's only the event.
Handler = Callable[[Cursor, Any], None] | Callable[[Any], None]


class Projection(ABC):
    """Handlers keyed by event class, applied in log order.

    `read_model` projections keep tables that queries read: commands wait for them
    (read-your-writes) and their handler and tracking commit in one transaction (exactly-once).
    Others (`read_model = False`) cause side effects outside the database, at least once.
    """

    name: ClassVar[str]
    applications: ClassVar[tuple[str, ...]]
    read_model: ClassVar[bool] = True
    tables: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def handlers(self) -> Mapping[type, Handler]:
        """Event class -> the function that applies it."""

    def topics(self) -> dict[str, Handler]:
        return {event_class.TOPIC: handler for event_class, handler in self.handlers().items()}
