# Helpers shared by the run and test scripts (sourced, not run).

# ensure_packages PKG...: installs the Debian packages that are missing. As root it runs
# apt-get update once and installs them; otherwise it prints the exact command and fails.
ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing packages; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
}

# port_in_use PORT: whether something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# spare_port FROM: the first port from FROM upwards that nothing listens on.
spare_port() {
    local port=$1
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "$port"
}

# wait_for_port PORT SECONDS: waits until the port accepts connections.
wait_for_port() {
    local deadline=$((SECONDS + $2))
    until port_in_use "$1"; do
        [ $SECONDS -ge $deadline ] && { echo "nothing listens on port $1 after $2 s" >&2; return 1; }
        sleep 0.1
    done
}
