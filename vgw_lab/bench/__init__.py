"""make bench: the fast-path vs slow-path experiment, policy scale and punt isolation.

Everything is measured in one run on this machine, modes interleaved (A B C A B C ...),
and reported as medians with min/max and ratios computed within the run:

  A  no firewall: the bridge forwards with NORMAL
  B  vgw_ryu fast path: the controller's conntrack flows, a policy of >100 rules
  C  slow path: every packet through a Python firewall in the controller (vgw_lab.slowpath)

Results go to bench/results/ (JSON, Markdown, PNG). ``--smoke`` runs tiny sizes.

    python -m vgw_lab.bench [--smoke] [--out DIR]

Modules: ``common`` (paths, VMs, output helpers), ``bed`` (the A/B/C experiment and
punt isolation), ``scale`` (policy scale, rule-change latency, compiler alone),
``report`` (Markdown and plot), ``cli`` (the command line).
"""
