"""`python -m kproxy.vm [--timeout S] -- COMMAND...`: run COMMAND inside the test VM."""
import sys

from .harness import main

sys.exit(main())
