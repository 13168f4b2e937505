#!/bin/bash
# ejabberdctl against the MUC bench node (mucbench@localhost); config copied to /tmp so user ejabberd can read it.
D=/tmp/muc-bench-ejabberd
if [ "$(id -u)" = 0 ]; then AS="setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=/var/lib/ejabberd"; else AS=; fi
cd /tmp
exec $AS ejabberdctl --config-dir "$D/etc" --config "$D/etc/ejabberd.yml" \
  --ctl-config "$D/etc/ejabberdctl.cfg" --logs $D/logs --spool $D/spool "$@"
