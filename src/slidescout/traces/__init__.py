"""Layer 4: the run directory (``rundir.py``: manifest, results, traces, blobs, the
``TraceRecorder``), its writer lock (``runlock.py``), crash-safe writes (``safeio.py``) and the
terminal view of a trace (``show.py``). The web viewer and the HTML report (``viewer/``) are apps.
"""

from slidescout.traces.rundir import BlobStore, RunDir, TraceRecorder, trace_file
from slidescout.traces.runlock import RunLock, RunLockedError

__all__ = ["BlobStore", "RunDir", "RunLock", "RunLockedError", "TraceRecorder", "trace_file"]
