from fleetmatch.entry import main

main()
