"""Old home of the exact forward-pass shortcuts, now in `interp.engine`; these names are aliases of the engine's."""
from __future__ import annotations

from interp.engine import (  # noqa: F401  (aliases: the engine is their one home)
    READOUT_POS,
    attention_z,
    attn_out_of,
    finish,
    from_attn_out,
    from_mlp_out,
    from_outputs,
    from_z,
    head_z,
    mlp,
    readout_layer,
    resid_mid,
)
from interp.engine import shortcuts_supported as supported  # noqa: F401
