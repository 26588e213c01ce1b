#!/bin/sh
# bench/ktls-memory.sh: user memory (RSS) per idle established connection,
# kernel TLS (ktls = auto where the kernel has the tls ULP) and user-space
# TLS (ktls = off), with the real mtlsd, bench/loadgen and its echo backend.
#
#   B=BUILD_DIR [NA=600] [N=300] [MODES="auto off"] sh bench/ktls-memory.sh
#
# mtlsd is warmed with NA idle connections (this touches the buffer ring,
# pools and caches once), then N more are opened: the RSS growth over N is
# the per-connection cost. In the VM (no kTLS on the build hosts):
#   tests/vm/run-in-vm.sh -t 900 -e B=$PWD/build -e N=300 -e NA=600 sh bench/ktls-memory.sh
# Results and their meaning: docs/ktls.md ("Memory per connection").
set -u
B=${B:?set B to the build directory}
FX=$B/tests/fixtures
N=${N:-500}
W=$(mktemp -d /tmp/mem.XXXX)
cp -r $FX $W/fx; FX=$W/fx
ulimit -n 65536 2>/dev/null || true
$B/bench/loadgen --serve-echo 127.0.0.1:9902 > $W/echo.log 2>&1 &
EP=$!
for mode in ${MODES:-auto off}; do
cat > $W/m.conf <<CONF
[mtlsd]
workers = 1
ktls = $mode
max_connections = 20000
control_socket = $W/ctl-$mode.sock
[server_cert.ec]
cert = $FX/server/chain.pem
key = $FX/server/key.pem
[partner.partner]
ca = $FX/pki/ca-bundle.pem
crl = $FX/pki/crls.pem
backend = 127.0.0.1:9902
proxy_protocol = v2
allow_uri = spiffe://partner.example/prod/*
CONF
$B/dataplane/mtlsd --config $W/m.conf --listen 127.0.0.1:9900 > $W/mtlsd-$mode.log 2>&1 &
MP=$!
sleep 2
# phase A: NA connections held (touches the buffer ring, pools, caches)
lg() { $B/bench/loadgen --connect 127.0.0.1:9900 --cert $FX/client-ec/chain.pem --key $FX/client-ec/key.pem --ca $FX/pki/ca-bundle.pem --mode idle --connections $1 --hold 900 --ready-file $2 > $3 2>&1 & }
waitready() { i=0; while [ ! -f $1 ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done; sleep 2; }
lg ${NA:-600} $W/readyA $W/lgA-$mode.log; LA=$!
waitready $W/readyA
r1=$(awk '/^Rss:/{print $2}' /proc/$MP/smaps_rollup)
lg $N $W/readyB $W/lgB-$mode.log; LB=$!
waitready $W/readyB
r2=$(awk '/^Rss:/{print $2}' /proc/$MP/smaps_rollup)
echo "ktls=$mode A=${NA:-600} B=$N rss_after_A=${r1}KiB rss_after_B=${r2}KiB per_conn=$(( (r2 - r1) * 1024 / N )) bytes readyA=$([ -f $W/readyA ] && echo yes) readyB=$([ -f $W/readyB ] && echo yes)"
grep TlsCurr /proc/net/tls_stat 2>/dev/null | tr -s ' \t' ' ' | tr '\n' ' '; echo
kill $LA $LB; wait $LA $LB 2>/dev/null
kill $MP; wait $MP 2>/dev/null
grep -i "error" $W/mtlsd-$mode.log | head -3
tail -1 $W/lgB-$mode.log | cut -c1-80
done
kill $EP
