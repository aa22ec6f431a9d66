from profiles.measured import main

main()
