#!/bin/sh
# Renders kamailio-config/ with this container's VECHE_* values (front door VECHE_SIP_HOST:
# VECHE_SIP_PORT, carrier VECHE_TRUNK_TARGET, nodes VECHE_NODE_HOSTS), then runs Kamailio in the
# foreground from those files only (never Debian's /etc/kamailio).
set -eu
CONF_DIR=/etc/veche/kamailio

cd /opt/veche
python3 -m engine kamailio-config render "$CONF_DIR"
exec /usr/sbin/kamailio -f "$CONF_DIR/kamailio.cfg" -DD -E -Y /run/kamailio "$@"
