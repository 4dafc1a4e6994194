"""DVC stage `train_em`: see focus.train.pipeline (run_em)."""

import sys

from focus.train.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("em"))
