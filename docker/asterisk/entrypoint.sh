#!/bin/sh
# Renders asterisk-config/ with this container's VECHE_* / ASTERISK_AMI_URL values, then runs
# Asterisk in the foreground from those files only (never Debian's samples). VECHE_MEDIA_NODE
# (ast1, ast2, ...) renders that one of several nodes (VECHE_NODE_HOSTS): its own address, its
# trunk to Kamailio.
set -eu
CONF_DIR=/etc/veche/asterisk

if [ -z "${VECHE_AMI_SECRET:-}" ] && [ -z "${ASTERISK_AMI_URL:-}" ]; then
    echo "veche-asterisk: error: set VECHE_AMI_SECRET (the AMI secret the engine logs in with)" >&2
    exit 2
fi

cd /opt/veche
python3 -m engine asterisk-config render "$CONF_DIR" ${VECHE_MEDIA_NODE:+--node "$VECHE_MEDIA_NODE"}
for dir in db spool run log; do
    install -d -o asterisk -g asterisk "/var/lib/asterisk/$dir"
done
chown -R asterisk:asterisk "$CONF_DIR"
chmod 0640 "$CONF_DIR/manager.conf"

exec /usr/sbin/asterisk -f -n -U asterisk -G asterisk -C "$CONF_DIR/asterisk.conf" "$@"
