"""DVC stage `synth`: the synthetic train / NoW-like / AR-like sets and their contact sheets
(see focus.synth.stage)."""

import sys

from focus.stage_cli import pin_process

pin_process()  # one BLAS thread, deterministic kernels: before numpy and torch load

from focus.synth.stage import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
