"""Labs and benchmarks for vgw_ryu: topologies, Mininet glue, namespaces, traffic, bench."""
