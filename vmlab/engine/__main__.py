"""``python -m vmlab.engine``: compile the fault engine (or load it from numba's cache) once,
before parallel work (see ``vmlab.engine.warm``)."""
from .warm import warm

warm(verbose=True)
