"""schemathesis hooks for tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Every request goes out signed in, as the verified creator or the verified buyer the test prepared
(their access tokens in UGC_FUZZ_TOKENS, comma-separated), so the run gets past 401 to what each
operation does for a creator and for a client. schemathesis writes bearer tokens of its own from the
security scheme (random text, so 401 every time): they are replaced; 401s are the API tests' business.
"""

from __future__ import annotations

import os
import random
from typing import Any

import schemathesis

_TOKENS = [token for token in os.environ.get("UGC_FUZZ_TOKENS", "").split(",") if token]
_PICK = random.Random(0)


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    if not _TOKENS:
        return
    if case.headers is None:
        case.headers = {}
    for name in [name for name in case.headers if name.lower() == "authorization"]:
        del case.headers[name]
    case.headers["Authorization"] = f"Bearer {_PICK.choice(_TOKENS)}"
