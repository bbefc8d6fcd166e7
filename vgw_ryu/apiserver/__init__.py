"""``vgw-api``: the /v1 REST API as a stateless server over the policy database.

Any number of them may run (behind a load balancer, or one per operator station);
each keeps a replica of the database and commits each write in one transaction
(see vgw_ryu.store.ovsdb). What only a hypervisor knows (its connection tables, logs,
datapath traces) is answered by that hypervisor's agent, on its own loopback API.
No Ryu here.
"""

import warnings

# The ovs library imports eventlet when it is installed (for the Ryu app); this server
# does not use it.
warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
