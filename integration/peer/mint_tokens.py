"""Mints JWTs with PyJWT (an independent implementation) from jwt-auth's test keys.

    python mint_tokens.py ISSUER AUDIENCE
prints a JSON object: algorithm name -> token, for every algorithm jwt-auth supports,
plus a few deliberately bad ones ("expired", "wrong_audience", "wrong_key", and "crlf_sub" /
"ctl_sub": valid signatures over a `sub` holding CR LF / control bytes).
"""
import base64, json, os, sys, time
import warnings
warnings.filterwarnings("ignore")  # short test HMAC key: fine for tests
import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization

issuer, audience = sys.argv[1], sys.argv[2]
keys = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "filters", "jwt-auth", "testdata")

def private(name):
    with open(os.path.join(keys, name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)

rsa, ec256, ec384, ed = private("rsa.pem"), private("ec256.pem"), private("ec384.pem"), private("ed25519.pem")
with open(os.path.join(keys, "hmac.key")) as f:
    secret = base64.urlsafe_b64decode(f.read().strip() + "==")

now = int(time.time())
claims = {"iss": issuer, "aud": audience, "sub": "peer-alice", "iat": now, "exp": now + 3600}
plan = [
    ("RS256", rsa, "rsa-1"), ("RS384", rsa, "rsa-1"), ("RS512", rsa, "rsa-1"),
    ("PS256", rsa, "rsa-1"), ("PS384", rsa, "rsa-1"), ("PS512", rsa, "rsa-1"),
    ("ES256", ec256, "ec256-1"), ("ES384", ec384, "ec384-1"), ("EdDSA", ed, "ed-1"),
    ("HS256", secret, "hs-1"), ("HS384", secret, "hs-1"), ("HS512", secret, "hs-1"),
]
out = {alg: jwt.encode(claims, key, algorithm=alg, headers={"kid": kid}) for alg, key, kid in plan}
out["expired"] = jwt.encode(dict(claims, exp=now - 3600), rsa, algorithm="RS256", headers={"kid": "rsa-1"})
out["wrong_audience"] = jwt.encode(dict(claims, aud="elsewhere"), ec256, algorithm="ES256", headers={"kid": "ec256-1"})
out["wrong_key"] = jwt.encode(claims, private("rsa-other.pem"), algorithm="RS256", headers={"kid": "rsa-1"})
# Validly signed, but a claim that is no header value: jwt-auth must refuse, not copy it.
out["crlf_sub"] = jwt.encode(dict(claims, sub="peer-alice\r\nx-injected: 1"), rsa, algorithm="RS256", headers={"kid": "rsa-1"})
out["ctl_sub"] = jwt.encode(dict(claims, sub="peer\x01alice\x7f"), ec256, algorithm="ES256", headers={"kid": "ec256-1"})
if len(sys.argv) > 3:  # a pool of distinct tokens: mint_tokens.py ISS AUD N ALG
    n, alg = int(sys.argv[3]), sys.argv[4]
    key, kid = {a: (k, i) for a, k, i in plan}[alg]
    out = {"pool": [jwt.encode(dict(claims, jti=str(i), exp=now + 86400), key, algorithm=alg, headers={"kid": kid}) for i in range(n)]}
print(json.dumps(out))
