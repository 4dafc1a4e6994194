"""DVC stage `train_pretrain_seg`: see focus.train.pipeline (run_pretrain_seg)."""

import sys

from focus.train.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("pretrain_seg"))
