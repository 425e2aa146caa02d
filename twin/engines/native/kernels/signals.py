"""Signal state of every connection from the fixed-time programs."""
from __future__ import annotations

from twin.jit import kernel
from twin.engines.native.kernels.state import ACTUATED, UNCONTROLLED


@kernel(refcounts=False)
def update_signals(t, tls_offset, tls_phase_offsets, phase_duration, phase_state, tls_kind, conn_tls, conn_link,
                   tls_phase_out, conn_signal_out, force):
    """Current phase of every traffic light and signal state of every connection at time ``t`` [s].

    The connections are written when a fixed-time light changed phase since the last call, or with
    ``force`` (the first call, and the first after a program changed: the caller knows). Otherwise they
    hold what the last write gave, as nothing else writes them but :func:`twin.engines.native.signals.actuate`,
    which writes those of the actuated lights (``tls_kind``) after this, every step; so the pass over every
    connection is made only when something changed.
    """
    n_tls = tls_offset.shape[0]
    changed = force
    for k in range(n_tls):
        p0 = tls_phase_offsets[k]
        p1 = tls_phase_offsets[k + 1]
        cycle = 0.0
        for p in range(p0, p1):
            cycle += phase_duration[p]
        tt = (t + tls_offset[k]) % cycle
        ph = p0
        acc = phase_duration[p0]
        while tt >= acc and ph < p1 - 1:
            ph += 1
            acc += phase_duration[ph]
        if tls_kind[k] != ACTUATED and tls_phase_out[k] != ph:
            changed = True
        tls_phase_out[k] = ph
    if not changed:
        return
    for c in range(conn_tls.shape[0]):
        k = conn_tls[c]
        if k < 0:
            conn_signal_out[c] = UNCONTROLLED
        else:
            conn_signal_out[c] = phase_state[tls_phase_out[k], conn_link[c]]
