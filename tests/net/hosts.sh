# hosts.sh - the tests' own hosts: network namespaces joined by veth pairs to
# one bridge, so that every node and the S3 server has an address and a link
# a test can cut.  Sourced by the end-to-end tests; needs root and iproute2.
# Nothing touches the machine's own network: the bridge lives in a namespace
# of its own ("hub"), every name carries the test's tag, and net_cleanup
# deletes them all.
#
#   net_init TAG           the hub (bridge br0); NET_OK=1 once it works
#   net_host NAME          a host: namespace, link to the hub, address
#                          10.77.0.N/24 (NET_ADDR[NAME]); loopback up
#   net_exec NAME CMD...   runs CMD inside NAME's namespace (exec: the pid is
#                          the command's)
#   net_link NAME up|down  cuts or restores NAME's link (its hub side, as
#                          pulling the cable: the host's own address stays)
#   net_cleanup            deletes every namespace net_init and net_host made
#
# A test that cannot make namespaces (not root, no iproute2) says it was
# skipped with a reason that names what is missing.

declare -gA NET_ADDR
declare -gA NET_NS
declare -gA NET_VETH
declare -g NET_TAG="" NET_HUB="" NET_NEXT=2 NET_OK=0

net_why_not() { # prints why namespaces cannot be made here, or nothing
  [ "$(id -u)" = 0 ] || { echo "not root (network namespaces need it)"; return; }
  command -v ip >/dev/null || { echo "no iproute2 (the ip command)"; return; }
}

net_init() {
  NET_TAG=$1
  NET_HUB=tsn-$NET_TAG-hub
  ip netns add "$NET_HUB" || return 1
  ip -n "$NET_HUB" link set lo up &&
    ip -n "$NET_HUB" link add br0 type bridge &&
    ip -n "$NET_HUB" link set br0 up || return 1
  NET_OK=1
}

net_host() {
  local name=$1 ns=tsn-$NET_TAG-$1 n=$NET_NEXT
  local veth=tv$n-$NET_TAG
  veth=${veth:0:15}
  ip netns add "$ns" || return 1
  NET_NS[$name]=$ns
  # the pair is made in the host's namespace, one end moved to the hub
  ip -n "$ns" link add eth0 type veth peer name "$veth" &&
    ip -n "$ns" link set "$veth" netns "$NET_HUB" &&
    ip -n "$NET_HUB" link set "$veth" master br0 &&
    ip -n "$NET_HUB" link set "$veth" up &&
    ip -n "$ns" addr add "10.77.0.$n/24" dev eth0 &&
    ip -n "$ns" link set eth0 up &&
    ip -n "$ns" link set lo up || return 1
  NET_VETH[$name]=$veth
  NET_ADDR[$name]=10.77.0.$n
  NET_NEXT=$((n + 1))
}

net_exec() {
  local ns=${NET_NS[$1]:?net_exec: no host $1}
  shift
  ip netns exec "$ns" "$@"
}

net_link() { # name up|down
  ip -n "$NET_HUB" link set "${NET_VETH[$1]:?net_link: no host $1}" "$2"
}

net_cleanup() {
  local k
  for k in "${!NET_NS[@]}"; do ip netns del "${NET_NS[$k]}" 2>/dev/null; done
  [ -n "$NET_HUB" ] && ip netns del "$NET_HUB" 2>/dev/null
  NET_NS=()
  NET_OK=0
  return 0
}
