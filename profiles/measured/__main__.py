from tunedoc.profiles.measured import main

main()
