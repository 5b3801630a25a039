from asgispy.cli.main import main

raise SystemExit(main())
