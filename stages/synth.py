"""DVC stage `synth`: the synthetic train / NoW-like / AR-like sets and their contact sheets
(see focus.synth.stage)."""

import sys

from focus.synth.stage import main

if __name__ == "__main__":
    sys.exit(main())
