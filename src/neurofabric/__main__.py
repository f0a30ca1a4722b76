from neurofabric.host.cli import main

main()
