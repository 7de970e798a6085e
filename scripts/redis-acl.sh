#!/usr/bin/env bash
# redis-acl.sh [PREFIX]: prints deploy/redis-users.acl with its placeholders filled in: the key prefix (PREFIX, else
# OPERYN_KEY_PREFIX, else operyn) and each role's password, read from the files that OPERYN_GATEWAY_PASSWORD_FILE,
# OPERYN_WORKER_PASSWORD_FILE and OPERYN_ADMIN_PASSWORD_FILE name (a password never goes on a command line).
#   OPERYN_GATEWAY_PASSWORD_FILE=… OPERYN_WORKER_PASSWORD_FILE=… OPERYN_ADMIN_PASSWORD_FILE=… \
#       scripts/redis-acl.sh > /etc/redis/users.acl      # then aclfile /etc/redis/users.acl in redis.conf
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-${OPERYN_KEY_PREFIX:-operyn}}
secret() { # secret VARIABLE: the file's contents without trailing line breaks; fails, naming the variable, never the secret
    local file=${!1:-}
    [ -n "$file" ] || { echo "$1 is not set" >&2; exit 2; }
    [ -r "$file" ] || { echo "$1: cannot read $file" >&2; exit 2; }
    local value
    value=$(cat "$file")
    [ -n "$value" ] || { echo "$1: $file is empty" >&2; exit 2; }
    case "$value" in *[[:space:]]*) echo "$1: a Redis ACL password cannot hold spaces" >&2; exit 2 ;; esac
    printf '%s' "$value"
}
gateway=$(secret OPERYN_GATEWAY_PASSWORD_FILE)
worker=$(secret OPERYN_WORKER_PASSWORD_FILE)
admin=$(secret OPERYN_ADMIN_PASSWORD_FILE)
# The passwords are stored as SHA-256 (#hex), so the rendered file holds no password either.
hash() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
sed -e "s/@PREFIX@/$prefix/g" -e "s/>@GATEWAY_PASSWORD@/#$(hash "$gateway")/" -e "s/>@WORKER_PASSWORD@/#$(hash "$worker")/" \
    -e "s/>@ADMIN_PASSWORD@/#$(hash "$admin")/" deploy/redis-users.acl | grep -v '^#' | grep -v '^$'
