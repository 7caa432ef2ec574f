"""The event stores' transcoder: the library's JSON, decoded by orjson.

Decoding a stored event was most of what reading the log costs a replay: the standard library's
parser calls a Python hook for every JSON object (an order event has three or four), ~10 µs an
event (bench/results: the rebuild). orjson parses the whole state in C, and only the objects that
stand for a typed value (`{"_type_": …, "_data_": …}`, as the library's encoder writes them) are
turned back into it here, inner ones first, as the hook did. Encoding is the library's own: the
stored bytes (and the hash chain over them) do not change.
"""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder


class _Float(Exception):
    """A float in the state: orjson reads an integer past 64 bits as one (the standard library does not)."""


_CONTAINERS = frozenset((dict, list))


class OrjsonTranscoder(JSONTranscoder):
    def decode(self, data: bytes) -> Any:
        """The state `data` as the library's decoder reads it. What orjson refuses or may read
        otherwise (NaN and infinities, lone surrogates; any float, which may have been a long
        integer: our events hold none) is read by the library's decoder itself."""
        try:
            return self._revived(orjson.loads(data))
        except (orjson.JSONDecodeError, _Float):
            return super().decode(data)

    def _revived(self, value: Any) -> Any:
        """`value` with each typed object in it turned into its value (containers changed in place)."""
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(item) in _CONTAINERS:
                    value[key] = self._item(item)
                elif type(item) is float:
                    raise _Float
            return self._decode_obj(value) if len(value) == 2 else value
        if kind is list:
            for index, item in enumerate(value):
                if type(item) in _CONTAINERS:
                    value[index] = self._item(item)
                elif type(item) is float:
                    raise _Float
        elif kind is float:
            raise _Float
        return value

    def _item(self, item: dict[str, Any] | list[Any]) -> Any:
        """A container inside the state, revived; a typed value of text (a time, a Decimal, a UUID:
        most of them) in one call."""
        if type(item) is dict and len(item) == 2:
            data = item.get("_data_")
            if type(data) is str and (transcoding := self.names.get(item.get("_type_"))) is not None:  # type: ignore[arg-type]
                return transcoding.decode(data)
        return self._revived(item)
