"""`python -m sessions ...`"""

import sys

from sessions.cli import main

sys.exit(main())
