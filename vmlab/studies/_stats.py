"""Statistics the studies share when they set a simulation against a closed form."""
from __future__ import annotations

import math


def z_score(measured, expected, se):
    """``(measured - expected) / se``: how many standard errors a simulated mean lies from
    its closed form.  With no spread (``se == 0``: every sample equal) it is 0 when the two
    agree (to floating-point rounding) and signed infinity when they do not; with no estimate of the spread (``se`` NaN,
    one sample) or no measurement, NaN, which no tolerance accepts."""
    if any(isinstance(v, float) and math.isnan(v) for v in (measured, expected, se)):
        return math.nan
    if se == 0:
        if math.isclose(measured, expected, rel_tol=1e-9, abs_tol=1e-9):
            return 0.0
        return math.copysign(math.inf, measured - expected)
    return (measured - expected) / se
