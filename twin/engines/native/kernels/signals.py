"""Signal state of every connection from the fixed-time programs."""
from __future__ import annotations

from twin.jit import kernel
from twin.engines.native.kernels.state import UNCONTROLLED


@kernel
def update_signals(t, tls_offset, tls_phase_offsets, phase_duration, phase_state, conn_tls, conn_link,
                   tls_phase_out, conn_signal_out):
    """Current phase of every traffic light and signal state of every connection at time ``t`` [s]."""
    n_tls = tls_offset.shape[0]
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
        tls_phase_out[k] = ph
    for c in range(conn_tls.shape[0]):
        k = conn_tls[c]
        if k < 0:
            conn_signal_out[c] = UNCONTROLLED
        else:
            conn_signal_out[c] = phase_state[tls_phase_out[k], conn_link[c]]
