"""`python -m nodekit`: see `nodekit.cli`."""

from nodekit.cli import main

raise SystemExit(main())
