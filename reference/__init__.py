"""shakyo reference: the complete CoaT-ULSTM training system (ICRGW 2023, 2nd place)."""

import warnings

# fastai 2.8.12 calls torch.jit.script at import time, which torch 2.14 flags as
# deprecated; the warning says nothing about the user's code and lands in the
# middle of tables (`shakyo check`, `shakyo train`).
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
)
