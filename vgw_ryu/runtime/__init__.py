"""The runtime without Ryu: engine, store, port directory, firewall log, sync logic."""
