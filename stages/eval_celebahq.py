"""DVC stage `eval_celebahq`: see focus.eval.celebahq."""

import sys

from focus.stage_cli import pin_process

pin_process()  # one BLAS thread, deterministic kernels: before numpy and torch load

from focus.eval.cli import stage_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(stage_main("celebahq"))
