"""DVC stage `eval_now`: see focus.eval.pipeline."""

import sys

from focus.eval.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("now"))
