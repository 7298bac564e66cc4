"""`python -m topology.cli`: the same as the `rabbitform` script."""

from topology.cli.main import main

raise SystemExit(main())
