"""Suite-wide settings.

No verdict may depend on the machine's speed (CI machines are shared and loaded):
Hypothesis's per-example deadline (200 ms by default) is off for every property test,
including ones added later that forget to say so."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("driftwatch", deadline=None)
settings.load_profile("driftwatch")
