"""``python -m engine.daemon``: run the engine daemon (``mmul-workbench engine start`` does this)."""
import sys

from engine.daemon.server import main

sys.exit(main())
