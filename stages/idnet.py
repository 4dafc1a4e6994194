"""DVC stage ``idnet``: train the offline identity network (see focus/idnet/stage.py)."""

import sys

from focus.stage_cli import pin_process

pin_process()  # one BLAS thread, deterministic kernels: before numpy and torch load

from focus.idnet.stage import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
