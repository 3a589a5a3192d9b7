from swarmscope.cli import main

main()
