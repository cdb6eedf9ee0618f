#!/bin/bash
# Token verifications per second through mpn_token_verify next to
# `openssl speed` for the same primitive, run one after the other for each
# algorithm so that both see the same machine load.
#
#     t/bench/bench_token.sh BENCH_BINARY [SECONDS]
#
# HS256 is compared with HMAC-SHA256 over 256-byte blocks (about the size
# of a token's signing input), RS256 with rsa2048 verify, ES256 with
# ecdsap256 verify, EdDSA with ed25519 verify.  The token carries iss, sub,
# aud, iat and exp, and iss and aud are checked.

set -e -o pipefail

bin=${1:?usage: bench_token.sh BENCH_BINARY [SECONDS]}
secs=${2:-3}

# `openssl speed -mr` lines:
#   +F2:i:2048:sign/s:verify/s         +F4:i:256:sign/s:verify/s
#   +F6:i:253:Ed25519:sign/s:verify/s  +F:i:hmac(sha256):bytes/s
speed() {
    case $1 in
        HS256) openssl speed -mr -seconds "$secs" -bytes 256 -hmac sha256 \
                   2>/dev/null | awk -F: '/^\+F:/ { print $4 / 256 }' ;;
        RS256) openssl speed -mr -seconds "$secs" rsa2048 2>/dev/null \
                   | awk -F: '/^\+F2:/ { print $5 }' ;;
        ES256) openssl speed -mr -seconds "$secs" ecdsap256 2>/dev/null \
                   | awk -F: '/^\+F4:/ { print $5 }' ;;
        EdDSA) openssl speed -mr -seconds "$secs" ed25519 2>/dev/null \
                   | awk -F: '/^\+F6:/ { print $6 }' ;;
    esac
}

what() {
    case $1 in
        HS256) echo "hmac(sha256), 256-byte blocks" ;;
        RS256) echo "rsa2048 verify" ;;
        ES256) echo "ecdsap256 verify" ;;
        EdDSA) echo "ed25519 verify" ;;
    esac
}

printf "%-6s %13s %6s %13s %7s  %s\n" alg "mpn verify/s" bytes \
       "openssl /s" ratio "openssl speed primitive"

for alg in HS256 RS256 ES256 EdDSA; do
    ref=$(speed $alg)
    read -r name rate len < <("$bin" "$secs" $alg)
    awk -v a="$name" -v r="$rate" -v l="$len" -v o="$ref" -v w="$(what $alg)" \
        'BEGIN { printf "%-6s %13.0f %6d %13.0f %6.1f%%  %s\n",
                        a, r, l, o, 100 * r / o, w }'
done
