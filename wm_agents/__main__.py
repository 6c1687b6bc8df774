"""``python -m wm_agents``: the ``wm-agents`` command line."""

import sys

from wm_agents.cli import main

sys.exit(main())
