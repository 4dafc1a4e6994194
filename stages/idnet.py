"""DVC stage ``idnet``: train the offline identity network (see focus/idnet/stage.py)."""

import sys

from focus.idnet.stage import main

if __name__ == "__main__":
    sys.exit(main())
