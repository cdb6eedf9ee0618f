#!/usr/bin/python3
"""make bench's token variants: a fresh key of ALG, its verification JWKS
and one signed token per partner, with the claims of the judge's tokens
(sub, iat, exp a day ahead; header alg, typ, kid).  Signed with Debian's
python3-cryptography, which keeps the key loaded: 10,000 RS256 tokens take
seconds where signing each from the JWKS would take minutes.

    tokens.py ALG N BASE DIR    (ALG: HS256 RS256 ES256 EdDSA)

writes DIR/keys.jwks and DIR/tokens.txt (partners BASE .. BASE+N-1).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def num(n, size=None):
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


def signer(alg):
    jwk = {"kid": "bench", "alg": alg, "use": "sig"}
    if alg == "HS256":
        k = os.urandom(32)
        jwk.update(kty="oct", k=b64u(k))
        return (lambda m: hmac.digest(k, m, hashlib.sha256)), jwk
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = key.public_key().public_numbers()
        jwk.update(kty="RSA", n=b64u(num(pub.n)), e=b64u(num(pub.e)))
        return (lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA256())), jwk
    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        pub = key.public_key().public_numbers()
        jwk.update(kty="EC", crv="P-256", x=b64u(num(pub.x, 32)),
                   y=b64u(num(pub.y, 32)))

        def sign(m):
            r, s = decode_dss_signature(key.sign(m, ec.ECDSA(hashes.SHA256())))
            return num(r, 32) + num(s, 32)
        return sign, jwk
    if alg == "EdDSA":
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk.update(kty="OKP", crv="Ed25519", x=b64u(raw))
        return key.sign, jwk
    sys.exit("unknown alg " + alg)


def main():
    alg, n, base, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    sign, jwk = signer(alg)
    with open(os.path.join(folder, "keys.jwks"), "w") as f:
        json.dump({"keys": [jwk]}, f)
    head = b64u(json.dumps({"alg": alg, "typ": "JWT", "kid": "bench"},
                           separators=(",", ":")).encode())
    now = int(time.time())
    with open(os.path.join(folder, "tokens.txt"), "w") as f:
        for i in range(n):
            claims = {"sub": str(base + i), "iat": now, "exp": now + 86400}
            body = b64u(json.dumps(claims, separators=(",", ":")).encode())
            sig = sign(("%s.%s" % (head, body)).encode())
            f.write("%s.%s.%s\n" % (head, body, b64u(sig)))


if __name__ == "__main__":
    main()
