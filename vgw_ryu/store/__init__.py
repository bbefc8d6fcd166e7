"""The policy database: an OVSDB (``vgw.ovsschema``) served by ``ovsdb-server``.

``server`` runs and inspects the ``ovsdb-server`` processes (standalone, or a Raft
cluster); ``ovsdb`` reads and writes the policy through the ``ovs`` IDL. No Ryu here.
"""
