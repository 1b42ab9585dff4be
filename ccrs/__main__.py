from ccrs.cli import main

raise SystemExit(main())
