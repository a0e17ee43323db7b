"""Former home of the kernel, kept for imports: it is now the package ``vmlab.engine.kernel``."""
from .kernel.accounting import MAX_BINS
from .kernel.loop import _simulate

__all__ = ["MAX_BINS", "_simulate"]
