# Two namespace "VMs" on your own netdev bridge, the controller, a policy, a TCP test.
# Run as root from the checkout. Names, ports and the work directory can be changed
# through the variables below (tests/lab/test_recipe.py runs this file verbatim).
set -eu
BR=${BR:-vgw-br0} NS1=${NS1:-vgw-vm1} NS2=${NS2:-vgw-vm2}
P1=${P1:-vgw-vm1-p} P2=${P2:-vgw-vm2-p}
OF_PORT=${OF_PORT:-6653} API_PORT=${API_PORT:-8080} WORK=${WORK:-/tmp/vgw-recipe}
mkdir -p "$WORK"

# 1. The bridge: userspace datapath, secure fail mode, our controller.
ovs-vsctl add-br "$BR" -- set bridge "$BR" datapath_type=netdev fail_mode=secure \
    protocols=OpenFlow13,OpenFlow14
ovs-vsctl set-controller "$BR" "tcp:127.0.0.1:$OF_PORT"

# 2. Two "VMs": a namespace each, a veth into the bridge, vm-id on the OVS side.
#    `ethtool -K eth0 tx off` is required: on a netdev bridge a veth's TX checksum
#    offload makes the userspace conntrack mark TCP invalid, and it is dropped.
for i in 1 2; do
    eval ns=\$NS$i port=\$P$i
    ip netns add "$ns"
    ip link add "$port" type veth peer name "$port-x"
    ip link set "$port-x" netns "$ns"
    ip netns exec "$ns" ip link set "$port-x" name eth0
    ip netns exec "$ns" ip link set eth0 address "02:00:00:00:00:0$i"
    ip netns exec "$ns" ethtool -K eth0 tx off
    ip netns exec "$ns" ip addr add "10.0.0.$i/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip link set "$port" up
    ovs-vsctl add-port "$BR" "$port" -- set Interface "$port" external_ids:vm-id="vm$i"
done

# 3. The controller (its log in $WORK/controller.log), then wait until it answers.
.venv/bin/vgw-ryu --ofp-tcp-listen-port "$OF_PORT" --wsapi-port "$API_PORT" \
    --vgw-db "$WORK/state.db" > "$WORK/controller.log" 2>&1 &
echo $! > "$WORK/controller.pid"
export VGW_URL="http://127.0.0.1:$API_PORT"
until curl -sf "$VGW_URL/v1/health" > /dev/null; do sleep 0.2; done

# 4. A policy: vm2 accepts TCP 8000 from vm1 and nothing else.
cat > "$WORK/policy.yaml" <<'POLICY'
settings: {default_ingress: deny, default_egress: allow}
vms:
  vm1: {mac: "02:00:00:00:00:01", ips: ["10.0.0.1"]}
  vm2: {mac: "02:00:00:00:00:02", ips: ["10.0.0.2"]}
policies:
  web:
    applied_to: ["vm:vm2"]
    rules:
      - {id: http, direction: ingress, action: allow, protocol: tcp, ports: "8000",
         peer: "vm:vm1"}
POLICY
.venv/bin/vgwctl apply -f "$WORK/policy.yaml"

# 5. TCP: 8000 is allowed (retried while the switch is programmed), 8001 is not.
ip netns exec "$NS2" python3 -m http.server 8000 --bind 10.0.0.2 > /dev/null 2>&1 &
ip netns exec "$NS2" python3 -m http.server 8001 --bind 10.0.0.2 > /dev/null 2>&1 &
ip netns exec "$NS1" curl -sS -o /dev/null -m 2 --retry 15 --retry-delay 1 \
    --retry-all-errors http://10.0.0.2:8000/ && echo "vm1 -> vm2 tcp/8000: allowed"
if ip netns exec "$NS1" curl -s -o /dev/null -m 2 http://10.0.0.2:8001/; then
    echo "vm1 -> vm2 tcp/8001: allowed (unexpected)"; exit 1
fi
echo "vm1 -> vm2 tcp/8001: denied"
# Clean up: kill $(cat "$WORK/controller.pid") $(ip netns pids "$NS2");
#           ovs-vsctl del-br "$BR"; ip netns del "$NS1"; ip netns del "$NS2"
