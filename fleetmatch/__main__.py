from fleetmatch.cli import main

main()
