import sys

from kproxy.cli.main import main

sys.exit(main())
