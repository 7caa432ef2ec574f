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


class OrjsonTranscoder(JSONTranscoder):
    def decode(self, data: bytes) -> Any:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            # What orjson refuses and the standard library reads (integers past 64 bits, NaN, lone
            # surrogates) is read as the library always did.
            return super().decode(data)
        return self._revived(value)

    def _revived(self, value: Any) -> Any:
        """`value` with each typed object in it turned into its value (containers changed in place)."""
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(item) is dict or type(item) is list:
                    value[key] = self._revived(item)
            return self._decode_obj(value) if len(value) == 2 else value
        if kind is list:
            for index, item in enumerate(value):
                if type(item) is dict or type(item) is list:
                    value[index] = self._revived(item)
        return value
