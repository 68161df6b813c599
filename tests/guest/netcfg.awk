# Reads the small subset of a cloud-init network-config (version 1 or 2, optionally under
# a top-level "network:" key) that the Mutualis test guest understands, and prints one
# line per interface:  NAME|MAC|MTU|ADDR ADDR...|GATEWAY
#   v2: ethernets.<id>: match.macaddress, set-name, mtu, addresses (flow or block list),
#       gateway4, routes[] with to: default|0.0.0.0/0 and via:
#   v1: config[] items of type physical: name, mac_address, mtu, subnets[] of type static
#       with address (a.b.c.d or a.b.c.d/p), netmask, gateway
# Anything else (dhcp, nameservers, bonds, vlans, IPv6) is ignored. busybox awk compatible.

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function unq(s) { s = trim(s); if (s ~ /^".*"$/ || s ~ /^'.*'$/) s = substr(s, 2, length(s) - 2); return s }
function isdefault(s) { return s == "default" || s == "0.0.0.0/0" }
function reset_if() { name = ""; setname = ""; mac = ""; mtu = ""; addrs = ""; gw = ""; type = "" }
function add_addr(a) { a = unq(a); if (a != "") addrs = (addrs == "" ? a : addrs " " a) }
function flush_subnet() {
    if (s_open && s_type == "static" && s_addr != "") {
        if (s_addr !~ /\// && s_mask != "") s_addr = s_addr "/" s_mask
        add_addr(s_addr)
        if (gw == "" && s_gw != "") gw = s_gw
    }
    s_open = 0; s_type = ""; s_addr = ""; s_mask = ""; s_gw = ""
}
function flush_if() {
    flush_subnet()
    if (open_if && (mode == "v2" || type == "physical")) {
        n = (setname != "" ? setname : name)
        print n "|" tolower(mac) "|" mtu "|" addrs "|" gw
    }
    open_if = 0; reset_if(); ctx = ""; ctx_indent = -1
}

BEGIN { mode = ""; open_if = 0; eth_indent = -1; if_indent = -1; cfg_indent = -1; item_indent = -1; ctx = ""; ctx_indent = -1; reset_if() }

{
    line = $0
    sub(/\r$/, "", line)
    if (line ~ /^[ \t]*#/ || line ~ /^[ \t]*$/) next
    sub(/[ \t]+#.*$/, "", line)
    match(line, /^ */); indent = RLENGTH
    content = substr(line, indent + 1)
    item = 0
    if (content ~ /^- /) { item = 1; content = trim(substr(content, 3)); }
    else if (content == "-") { item = 1; content = "" }
    key = ""; val = ""
    if (content ~ /^[A-Za-z0-9_.-]+:( |$)/) {
        p = index(content, ":"); key = substr(content, 1, p - 1); val = trim(substr(content, p + 1))
    }
    kindent = item ? indent + 2 : indent

    # ---- leaving blocks -------------------------------------------------------------
    if (ctx != "" && (item ? indent < ctx_indent : indent <= ctx_indent)) {
        if (ctx == "subnets") flush_subnet()
        ctx = ""; ctx_indent = -1
    }
    if (mode == "v2" && eth_indent >= 0 && indent <= eth_indent) { flush_if(); eth_indent = -1; if_indent = -1 }
    if (mode == "v1" && cfg_indent >= 0 && indent <= cfg_indent && !item) { flush_if(); cfg_indent = -1; item_indent = -1 }

    # ---- version 2 ------------------------------------------------------------------
    if (key == "ethernets" && val == "") { flush_if(); mode = "v2"; eth_indent = indent; if_indent = -1; next }
    if (mode == "v2" && eth_indent >= 0) {
        if (if_indent < 0 && key != "" && !item) if_indent = indent
        if (indent == if_indent && key != "" && !item) { flush_if(); open_if = 1; name = key; next }
        if (!open_if) next
        if (ctx == "addresses" && item && key == "") { add_addr(content); next }
        if (ctx == "routes") {
            if (item) { r_to = ""; r_via = "" }
            if (key == "to") r_to = unq(val)
            if (key == "via") r_via = unq(val)
            if (isdefault(r_to) && r_via != "" && gw == "") gw = r_via
            next
        }
        if (key == "macaddress") mac = unq(val)
        else if (key == "set-name") setname = unq(val)
        else if (key == "mtu") mtu = unq(val)
        else if (key == "gateway4") gw = unq(val)
        else if (key == "addresses") {
            if (val ~ /^\[/) {
                gsub(/\[/, "", val); gsub(/\]/, "", val); k = split(val, parts, ",")
                for (j = 1; j <= k; j++) add_addr(parts[j])
            } else if (val == "") { ctx = "addresses"; ctx_indent = indent }
        } else if (key == "routes" && val == "") { ctx = "routes"; ctx_indent = indent }
        next
    }

    # ---- version 1 ------------------------------------------------------------------
    if (key == "config" && val == "" && !item) { flush_if(); mode = "v1"; cfg_indent = indent; item_indent = -1; next }
    if (mode == "v1" && cfg_indent >= 0) {
        if (item && (item_indent < 0 || indent == item_indent) && ctx == "") {
            flush_if(); item_indent = indent; open_if = 1
        }
        if (!open_if) next
        if (ctx == "subnets") {
            if (item) { flush_subnet(); s_open = 1 }
            if (key == "type") s_type = unq(val)
            else if (key == "address") s_addr = unq(val)
            else if (key == "netmask") s_mask = unq(val)
            else if (key == "gateway") s_gw = unq(val)
            next
        }
        if (key == "type") type = unq(val)
        else if (key == "name") name = unq(val)
        else if (key == "mac_address") mac = unq(val)
        else if (key == "mtu") mtu = unq(val)
        else if (key == "subnets" && val == "") { ctx = "subnets"; ctx_indent = indent }
        next
    }
}

END { flush_if() }
