"""The vgw_ryu Ryu application, where Ryu looks for it: ``ryu-manager vgw_ryu.app``.

Ryu loads the RyuApp classes *defined* in the module it is given, so the app is
subclassed here; it lives in vgw_ryu.ryuapp.app.
"""

from vgw_ryu.ryuapp import compat

compat.apply()  # before any Ryu import: ryu.app.wsgi needs it at import time

from vgw_ryu.ryuapp.app import VgwApp as _VgwApp


class VgwApp(_VgwApp):
    """Programs every connected switch with the compiled firewall and keeps it in sync."""
