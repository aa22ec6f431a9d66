from tunedoc.cli import main

raise SystemExit(main())
