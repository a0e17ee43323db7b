"""vmlab: replay memory-access traces through a model of the Linux page-fault path."""
from .errors import ScenarioError, TraceFormatError, VmlabError
from .trace import Op, Trace, TraceMeta, TraceWriter, open_trace, save_trace

__version__ = "0.1.0"
