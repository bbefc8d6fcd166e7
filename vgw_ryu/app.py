"""The vgw_ryu Ryu application: start with ``ryu-manager vgw_ryu.app`` or ``vgw-ryu``."""

from __future__ import annotations

import ipaddress
import logging

from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from ryu.ofproto import ofproto_v1_3, ofproto_v1_4

from vgw_ryu import compat, options
from vgw_ryu.http_api import Api
from vgw_ryu.ryu_rest import API_INSTANCE, RestController

compat.apply()
options.register()

LOG = logging.getLogger("vgw_ryu")


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve the API off loopback without a token."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        raise SystemExit(
            f"vgw_ryu: refusing to serve the REST API on {host}: binding off loopback "
            "needs a token (--vgw-token or [vgw] token in the config file)")


class VgwApp(app_manager.RyuApp):
    """Accepts switches and serves the REST API."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION, ofproto_v1_4.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        conf = self.CONF
        check_bind(conf.wsapi_host, conf.vgw.token)
        self.datapaths: dict[int, object] = {}
        self.api = Api(self)
        kwargs["wsgi"].register(RestController, {API_INSTANCE: self.api})
        LOG.info("vgw_ryu: REST API on http://%s:%s/v1/", conf.wsapi_host, conf.wsapi_port)

    # --- backend interface of the REST API -------------------------------------
    def revision(self) -> int:
        return 0

    def switch_count(self) -> int:
        return len(self.datapaths)

    # --- switches --------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _switch_features(self, ev):
        dp = ev.msg.datapath
        parser = dp.ofproto_parser
        ofp = dp.ofproto
        # Table 0 miss: drop. A secure-mode bridge forwards nothing we did not allow.
        dp.send_msg(parser.OFPFlowMod(dp, table_id=0, priority=0, command=ofp.OFPFC_ADD,
                                      match=parser.OFPMatch(), instructions=[]))

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev):
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[dp.id] = dp
            LOG.info("switch %016x connected (OpenFlow 0x%x)", dp.id, dp.ofproto.OFP_VERSION)
        elif ev.state == DEAD_DISPATCHER and dp.id is not None:
            if self.datapaths.pop(dp.id, None) is not None:
                LOG.info("switch %016x disconnected", dp.id)
