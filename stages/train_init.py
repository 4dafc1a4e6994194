"""DVC stage `train_init`: see focus.train.pipeline (run_init)."""

import sys

from focus.train.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("init"))
